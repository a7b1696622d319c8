// Tests of the memory store's own representation (packed relation alerts,
// digest-keyed dimensions). The store contracts themselves are checked by
// the conformance suite (tests/conformance), which runs on every store,
// the memory store included (conformance_memory).

#include "converge/memory/memory_store.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "converge/clock.h"
#include "converge/model.h"

namespace converge::memory {
namespace {

TEST_CASE("InstanceRepo: relation alerts round-trip exactly", "[memory]") {
  VirtualClock clock(absl::FromUnixSeconds(100));
  MemoryStores s = NewMemoryStores({&clock}).value();
  const std::vector<std::string> alerts = {"",
                                           "a",
                                           std::string(254, 'x'),
                                           std::string(255, 'y'),
                                           std::string(70000, 'z'),
                                           std::string("nul\0byte", 8),
                                           "\xff\x01"};
  CreateRequest req;
  req.instance.dimension = "!sha1#" + std::string(40, 'a');
  req.instance.create_time = clock.Now();
  req.primary.related_id = 7;
  req.primary.related_type = ConvergeType::kAction;
  req.primary.is_primary = true;
  req.primary.converge_status = ConvergeStatus::kExecuted;
  req.primary.alerts = alerts;
  CreateResult created = s.repo->Create(req).value();
  std::vector<ConvergeRelation> rels =
      s.repo->Relations(created.instance.id).value();
  REQUIRE(rels.size() == 1);
  CHECK(rels[0].alerts == alerts);
  // Canonical and non-canonical dimensions are both found while open.
  CHECK(s.repo->FindOpen(req.instance.dimension).value().has_value());
  CHECK_FALSE(
      s.repo->FindOpen("!sha1#" + std::string(40, 'A')).value().has_value());
  req.instance.dimension = "!sha1#" + std::string(40, 'A');  // not canonical
  req.primary.related_id = 8;
  REQUIRE(s.repo->Create(req).ok());
  CHECK(
      s.repo->LookupOpen("!sha1#" + std::string(40, 'A')).value().has_value());
  CHECK(s.repo->ListOpen(0).value().size() == 2);
}

}  // namespace
}  // namespace converge::memory
