// converged's API over real HTTP on loopback, in process, on a virtual
// clock (docs/http-api.md).

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "alertmanager.h"
#include "config.h"
#include "http_test_util.h"

namespace converge::service::testing {
namespace {

namespace bj = boost::json;

constexpr const char* kCollect =
    R"({"is_enabled":true,"converge_func":"collect","timedelta":60,"count":1,)"
    R"("condition":[{"dimension":"alert_name","value":["self"]}]})";

std::string ActionJson(int64_t id, const std::string& alert = "cpu",
                       const char* config = kCollect) {
  return absl::StrCat(R"({"id":)", id, R"(,"context":{"alert_name":")", alert,
                      R"("},"converge_config":)", config, "}");
}

bj::array Results(const bj::value& v) { return v.at("results").as_array(); }

std::string Str(const bj::value& v) { return std::string(v.as_string()); }

TEST_CASE("healthz, readyz and metrics answer", "[http][api]") {
  InProcess s;
  HttpResponse h = s.Get("/healthz");
  CHECK(h.status == 200);
  CHECK(Str(Json(h.body).at("status")) == "ok");
  HttpResponse r = s.Get("/readyz");
  CHECK(r.status == 200);
  CHECK(Str(Json(r.body).at("store")) == "memory:");
  HttpResponse m = s.Get("/metrics");
  CHECK(m.status == 200);
  CHECK(m.Header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(m.body.find("converge_lease_contention_total 0") != std::string::npos);
  CHECK(m.body.find("converged_http_requests_total{code=\"200\"} 2") !=
        std::string::npos);
  s.service->BeginDrain();
  HttpResponse d = s.Get("/readyz");
  CHECK(d.status == 503);
  CHECK(d.Header("retry-after") == "1");
}

TEST_CASE("POST /v1/actions decides one action or an array", "[http][api]") {
  InProcess s;
  HttpResponse one = s.Post("/v1/actions", ActionJson(1));
  REQUIRE(one.status == 200);
  const bj::array& r1 = Results(Json(one.body));
  REQUIRE(r1.size() == 1);
  CHECK(Str(r1[0].at("outcome")) == "execute");
  CHECK(r1[0].at("primary").as_bool());
  CHECK(r1[0].at("time").to_number<double>() == kStart);

  HttpResponse many =
      s.Post("/v1/actions",
             absl::StrCat("[", ActionJson(2), ",", ActionJson(3, "disk"), "]"));
  REQUIRE(many.status == 200);
  const bj::array& r2 = Results(Json(many.body));
  REQUIRE(r2.size() == 2);
  CHECK(Str(r2[0].at("outcome")) == "skip");  // joined action 1's instance
  CHECK(r2[0].at("converge_id") == r1[0].at("converge_id"));
  CHECK(Str(r2[1].at("outcome")) == "execute");  // another dimension

  // A redelivery gets the stored decision.
  HttpResponse again = s.Post("/v1/actions", ActionJson(2));
  CHECK(Results(Json(again.body))[0].at("replayed").as_bool());
  CHECK(Str(Results(Json(again.body))[0].at("outcome")) == "skip");

  HttpResponse got = s.Get("/v1/actions/2");
  REQUIRE(got.status == 200);
  CHECK(Str(Json(got.body).at("decision").at("outcome")) == "skip");
  CHECK(s.Get("/v1/actions/99").status == 404);
  CHECK(s.Get("/v1/actions/abc").status == 400);
}

TEST_CASE("default_converge_config applies to actions without one",
          "[http][api]") {
  InProcess s(absl::StrCat(R"({"default_converge_config":)", kCollect, "}"));
  HttpResponse r =
      s.Post("/v1/actions", R"({"id":5,"context":{"alert_name":"a"}})");
  REQUIRE(r.status == 200);
  CHECK(Results(Json(r.body))[0].at("converge_id").as_int64() > 0);
  InProcess plain;
  HttpResponse bad = plain.Post("/v1/actions", R"({"id":5})");
  CHECK(bad.status == 400);
  CHECK(Str(Json(bad.body).at("error").at("field")) == "converge_config");
}

TEST_CASE("queued mode answers 202 and the processor decides later",
          "[http][api]") {
  InProcess s(R"({"mode":"queued","queue":{"workers":0}})");
  HttpResponse r = s.Post(
      "/v1/actions", absl::StrCat("[", ActionJson(1), ",", ActionJson(2), "]"));
  REQUIRE(r.status == 202);
  const bj::array& res = Results(Json(r.body));
  REQUIRE(res.size() == 2);
  CHECK(Str(res[0].at("status")) == "queued");
  CHECK(s.Get("/v1/actions/1").status == 404);
  bj::value q = Json(s.Get("/v1/queues").body);
  // The two actions, the sweep and the retention task.
  CHECK(q.at("queues").at(0).at("pending").as_int64() == 4);
  REQUIRE(s.service->processor()->Drain().ok());
  CHECK(Str(Json(s.Get("/v1/actions/1").body).at("decision").at("outcome")) ==
        "execute");
  CHECK(Str(Json(s.Get("/v1/actions/2").body).at("decision").at("outcome")) ==
        "skip");
  // ?mode=sync overrides the config.
  HttpResponse sync = s.Post("/v1/actions?mode=sync", ActionJson(3));
  CHECK(sync.status == 200);
  CHECK(s.Post("/v1/actions?mode=later", ActionJson(4)).status == 400);
}

TEST_CASE("status reports and approvals", "[http][api]") {
  InProcess s;
  REQUIRE(s.Post("/v1/actions", ActionJson(1)).status == 200);
  HttpResponse ok = s.Post("/v1/actions/1/status", R"({"status":"success"})");
  CHECK(ok.status == 200);
  CHECK(Str(Json(ok.body).at("status")) == "success");
  HttpResponse unknown =
      s.Post("/v1/actions/77/status", R"({"status":"success"})");
  CHECK(unknown.status == 404);
  CHECK(Str(Json(unknown.body).at("error").at("code")) == "not_found");
  HttpResponse bad = s.Post("/v1/actions/1/status", R"({"status":"great"})");
  CHECK(bad.status == 400);
  CHECK(Str(Json(bad.body).at("error").at("field")) == "status");
  CHECK(s.Post("/v1/actions/1/status", R"({"status":3})").status == 400);
  CHECK(s.Post("/v1/actions/1/status", "{}").status == 400);
  // A key the route does not take is named, not ignored.
  HttpResponse extra = s.Post("/v1/actions/1/status",
                              R"({"status":"success","stauts":"failure"})");
  CHECK(extra.status == 400);
  CHECK(Str(Json(extra.body).at("error").at("field")) == "stauts");

  // defense: over the count, an action waits for approval.
  constexpr const char* kDefense =
      R"({"is_enabled":true,"converge_func":"defense","timedelta":60,"count":1,)"
      R"("condition":[{"dimension":"alert_name","value":["self"]}]})";
  REQUIRE(s.Post("/v1/actions", ActionJson(10, "net", kDefense)).status == 200);
  HttpResponse second = s.Post("/v1/actions", ActionJson(11, "net", kDefense));
  REQUIRE(Str(Results(Json(second.body))[0].at("outcome")) == "approval");
  HttpResponse approved =
      s.Post("/v1/actions/11/approval", R"({"approved":true})");
  CHECK(approved.status == 200);
  CHECK(Str(Json(approved.body).at("decision").at("outcome")) == "execute");
  // Not waiting any more: a conflict.
  HttpResponse twice =
      s.Post("/v1/actions/11/approval", R"({"approved":false})");
  CHECK(twice.status == 409);
  CHECK(Str(Json(twice.body).at("error").at("code")) == "failed_precondition");
  CHECK(s.Post("/v1/actions/11/approval", R"({"approved":"yes"})").status ==
        400);
  CHECK(s.Post("/v1/actions/404/approval", R"({"approved":true})").status ==
        404);
}

TEST_CASE("instances: list, get with relations, end", "[http][api]") {
  InProcess s;
  REQUIRE(
      s.Post("/v1/actions", absl::StrCat("[", ActionJson(1), ",", ActionJson(2),
                                         ",", ActionJson(3, "disk"), "]"))
          .status == 200);
  bj::value list = Json(s.Get("/v1/instances?open=true&level=action").body);
  const bj::array& inst = list.at("instances").as_array();
  REQUIRE(inst.size() == 2);
  const int64_t id = inst[0].at("id").as_int64();
  CHECK(Str(inst[0].at("converge_func")) == "collect");
  CHECK(Json(s.Get("/v1/instances?level=converge").body)
            .at("instances")
            .as_array()
            .empty());
  bj::value page = Json(s.Get("/v1/instances?limit=1").body);
  CHECK(page.at("instances").as_array().size() == 1);
  CHECK(page.at("next").as_int64() == id);
  bj::value rest =
      Json(s.Get(absl::StrCat("/v1/instances?limit=1&after=", id)).body);
  CHECK(rest.at("instances").at(0).at("id").as_int64() > id);
  CHECK(Json(s.Get("/v1/instances?open=false").body)
            .at("instances")
            .as_array()
            .empty());
  CHECK(s.Get("/v1/instances?open=maybe").status == 400);
  CHECK(s.Get("/v1/instances?level=third").status == 400);
  CHECK(s.Get("/v1/instances?limit=0").status == 400);

  bj::value one = Json(s.Get(absl::StrCat("/v1/instances/", id)).body);
  const bj::array& rel = one.at("instance").at("relations").as_array();
  REQUIRE(rel.size() == 2);
  CHECK(rel[0].at("is_primary").as_bool());
  CHECK(Str(rel[1].at("converge_status")) == "skipped");
  CHECK(one.at("instance").at("relations_next").is_null());
  // The relations a page at a time.
  bj::value p1 =
      Json(s.Get(absl::StrCat("/v1/instances/", id, "?limit=1")).body);
  REQUIRE(p1.at("instance").at("relations").as_array().size() == 1);
  CHECK(p1.at("instance").at("relations").at(0) == rel[0]);
  const int64_t next = p1.at("instance").at("relations_next").as_int64();
  CHECK(next == rel[0].at("id").as_int64());
  bj::value p2 = Json(
      s.Get(absl::StrCat("/v1/instances/", id, "?limit=1&after=", next)).body);
  REQUIRE(p2.at("instance").at("relations").as_array().size() == 1);
  CHECK(p2.at("instance").at("relations").at(0) == rel[1]);
  bj::value p3 = Json(s.Get(absl::StrCat("/v1/instances/", id,
                                         "?after=", rel[1].at("id").as_int64()))
                          .body);
  CHECK(p3.at("instance").at("relations").as_array().empty());
  CHECK(p3.at("instance").at("relations_next").is_null());
  CHECK(s.Get(absl::StrCat("/v1/instances/", id, "?limit=0")).status == 400);

  HttpResponse ended = s.Post(absl::StrCat("/v1/instances/", id, "/end"), "");
  CHECK(ended.status == 200);
  CHECK(Json(ended.body).at("ended").as_bool());
  CHECK_FALSE(Json(s.Post(absl::StrCat("/v1/instances/", id, "/end"), "").body)
                  .at("ended")
                  .as_bool());
  CHECK_FALSE(Json(s.Get(absl::StrCat("/v1/instances/", id)).body)
                  .at("instance")
                  .at("open")
                  .as_bool());
  CHECK(s.Get("/v1/instances/999").status == 404);
  // Ended instances are listed with open=false, and no longer with open=true.
  bj::value ended_list = Json(s.Get("/v1/instances?open=false").body);
  REQUIRE(ended_list.at("instances").as_array().size() == 1);
  CHECK(ended_list.at("instances").at(0).at("id").as_int64() == id);
  CHECK_FALSE(ended_list.at("instances").at(0).at("open").as_bool());
  const bj::value open_list = Json(s.Get("/v1/instances?open=true").body);
  for (const bj::value& i : open_list.at("instances").as_array()) {
    CHECK(i.at("id").as_int64() != id);
  }
  CHECK(s.Post("/v1/instances/999/end", "").status == 404);
  CHECK(s.Get("/v1/instances/-1").status == 400);
}

TEST_CASE(
    "a level filter reads at most max_scan_per_request instances a "
    "request and says where to go on",
    "[http][api]") {
  InProcess s(R"({"limits":{"max_scan_per_request":2}})");
  // Four first-level instances, none of the second level.
  REQUIRE(
      s.Post("/v1/actions",
             absl::StrCat("[", ActionJson(1, "a"), ",", ActionJson(2, "b"), ",",
                          ActionJson(3, "c"), ",", ActionJson(4, "d"), "]"))
          .status == 200);
  bj::value all = Json(s.Get("/v1/instances?level=action").body);
  REQUIRE(all.at("instances").as_array().size() == 4);
  CHECK(all.at("next").is_null());
  std::vector<int64_t> ids;
  for (const bj::value& i : all.at("instances").as_array()) {
    ids.push_back(i.at("id").as_int64());
  }
  // Nothing matches: each page reads two instances and answers none, with
  // the cursor after them; the last page ends the list.
  bj::value p1 = Json(s.Get("/v1/instances?level=converge&limit=1").body);
  CHECK(p1.at("instances").as_array().empty());
  REQUIRE(p1.at("next").is_int64());
  CHECK(p1.at("next").as_int64() == ids[1]);
  bj::value p2 =
      Json(s.Get(absl::StrCat("/v1/instances?level=converge&limit=1&after=",
                              p1.at("next").as_int64()))
               .body);
  CHECK(p2.at("instances").as_array().empty());
  REQUIRE(p2.at("next").is_int64());
  CHECK(p2.at("next").as_int64() == ids[3]);
  bj::value p3 =
      Json(s.Get(absl::StrCat("/v1/instances?level=converge&limit=1&after=",
                              p2.at("next").as_int64()))
               .body);
  CHECK(p3.at("instances").as_array().empty());
  CHECK(p3.at("next").is_null());
  // A match found within the budget is answered.
  bj::value m = Json(s.Get("/v1/instances?level=action&limit=1").body);
  REQUIRE(m.at("instances").as_array().size() == 1);
  CHECK(m.at("next").as_int64() == ids[0]);
}

TEST_CASE("decisions and summaries are pulled by cursor", "[http][api]") {
  InProcess s(R"({"queue":{"workers":0}})");
  REQUIRE(
      s.Post("/v1/actions", absl::StrCat("[", ActionJson(1), ",", ActionJson(2),
                                         ",", ActionJson(3), "]"))
          .status == 200);
  bj::value first = Json(s.Get("/v1/decisions?limit=2").body);
  REQUIRE(first.at("items").as_array().size() == 2);
  CHECK(first.at("items").at(0).at("action_id").as_int64() == 1);
  const int64_t next = first.at("next").as_int64();
  bj::value second =
      Json(s.Get(absl::StrCat("/v1/decisions?after=", next)).body);
  REQUIRE(second.at("items").as_array().size() == 1);
  CHECK(second.at("items").at(0).at("action_id").as_int64() == 3);
  CHECK(Json(s.Get(absl::StrCat("/v1/decisions?after=",
                                second.at("next").as_int64()))
                 .body)
            .at("items")
            .as_array()
            .empty());
  CHECK(s.Get("/v1/decisions?after=x").status == 400);
  // The largest cursor accepted reads nothing, and finding where to start
  // from it must not overflow (after + 1).
  bj::value beyond =
      Json(s.Get("/v1/decisions?after=9223372036854775807").body);
  CHECK(beyond.at("items").as_array().empty());
  CHECK(beyond.at("next").as_int64() == INT64_MAX);
  CHECK(beyond.at("missed").as_int64() == 0);

  // The collect summary is due 60 s after the instance was created.
  CHECK(Json(s.Get("/v1/summaries").body).at("items").as_array().empty());
  s.clock.Advance(absl::Seconds(61));
  REQUIRE(s.service->processor()->Drain().ok());
  bj::value sums = Json(s.Get("/v1/summaries").body);
  REQUIRE(sums.at("items").as_array().size() == 1);
  const bj::array& ids = sums.at("items").at(0).at("action_ids").as_array();
  REQUIRE(ids.size() == 2);
  CHECK(ids[0].as_int64() == 2);
  // Every kind, in order.
  bj::value all = Json(s.Get("/v1/outputs").body);
  CHECK(Str(all.at("items").at(0).at("type")) == "instance");
}

TEST_CASE("outputs are pushed to a webhook, with retries", "[http][api]") {
  Sink sink({500, 503});  // the first two POSTs fail
  InProcess s(absl::StrCat(
      R"({"outputs":{"webhook":{"url":"http://127.0.0.1:)", sink.port(),
      R"(/hook","batch":2,"backoff_min_ms":5,"backoff_max_ms":20}}})"));
  REQUIRE(s.Post("/v1/actions",
                 absl::StrCat("[", ActionJson(1), ",", ActionJson(2), "]"))
              .status == 200);
  // Three outputs: the instance, two decisions.
  std::vector<int64_t> seen;
  REQUIRE(PollUntil(absl::Seconds(10), [&] {
    seen.clear();
    for (const std::string& body : sink.bodies()) {
      const bj::value doc = Json(body);
      for (const bj::value& o : doc.at("outputs").as_array()) {
        if (o.at("type") == "decision")
          seen.push_back(o.at("action_id").as_int64());
      }
    }
    return seen.size() >= 2;
  }));
  CHECK(seen == std::vector<int64_t>{1, 2});
  CHECK(sink.requests() >= 4);  // two failures, then two batches
  HttpResponse m = s.Get("/metrics");
  CHECK(m.body.find("converged_webhook_failures_total 2") != std::string::npos);
}

// A task of a kind without a handler, enqueued and buried at once: one
// dead letter, "bogus:1".
void BuryBogusTask(InProcess& s) {
  QueueStore* q = s.service->manager()->stores().queue;
  Task bogus;
  bogus.id = "bogus:1";
  bogus.kind = "bogus";  // no handler: buried at once
  bogus.due = s.clock.Now();
  REQUIRE(q->Enqueue("converge", bogus).ok());
  REQUIRE(s.service->processor()->Drain().ok());
}

TEST_CASE("queues, dead letters and redrive", "[http][api]") {
  InProcess s(R"({"queue":{"workers":0}})");
  BuryBogusTask(s);
  bj::value before = Json(s.Get("/v1/queues").body);
  const bj::value& queue = before.at("queues").at(0);
  CHECK(queue.at("dead").as_int64() == 1);
  CHECK(Str(queue.at("dead_letters").at(0).at("id")) == "bogus:1");
  CHECK(Str(queue.at("oldest_due").at("id")) == "sweep");
  CHECK(before.at("processor").at("dead").as_int64() == 1);

  HttpResponse none = s.Post("/v1/dead-letters/redrive", R"({"ids":["nope"]})");
  CHECK(Json(none.body).at("not_found").at(0) == "nope");
  HttpResponse all = s.Post("/v1/dead-letters/redrive", "");
  REQUIRE(all.status == 200);
  CHECK(Json(all.body).at("redriven").at(0) == "bogus:1");
  bj::value after = Json(s.Get("/v1/queues").body);
  CHECK(after.at("queues").at(0).at("dead").as_int64() == 0);
  CHECK(after.at("queues").at(0).at("pending").as_int64() == 3);
  CHECK(s.Post("/v1/dead-letters/redrive", R"({"ids":"bogus:1"})").status ==
        400);
}

TEST_CASE(
    "a redrive of all moves at most max_scan_per_request and says "
    "what is left",
    "[http][api]") {
  InProcess s(R"({"queue":{"workers":0},"limits":{"max_scan_per_request":2}})");
  QueueStore* q = s.service->manager()->stores().queue;
  for (int i = 1; i <= 3; ++i) {
    Task bogus;
    bogus.id = absl::StrCat("bogus:", i);
    bogus.kind = "bogus";  // no handler: buried at once
    bogus.due = s.clock.Now();
    REQUIRE(q->Enqueue("converge", bogus).ok());
  }
  REQUIRE(s.service->processor()->Drain().ok());
  REQUIRE(q->Stats("converge").value().dead == 3);
  HttpResponse first = s.Post("/v1/dead-letters/redrive", "");
  REQUIRE(first.status == 200);
  CHECK(Json(first.body).at("redriven").as_array().size() == 2);
  CHECK(Json(first.body).at("more").as_bool());
  CHECK(q->Stats("converge").value().dead == 1);
  HttpResponse second = s.Post("/v1/dead-letters/redrive", R"({"all":true})");
  REQUIRE(second.status == 200);
  CHECK(Json(second.body).at("redriven").as_array().size() == 1);
  CHECK_FALSE(Json(second.body).at("more").as_bool());
  CHECK(q->Stats("converge").value().dead == 0);
  // More ids than that in one request: 413 naming "ids", nothing moved.
  HttpResponse many =
      s.Post("/v1/dead-letters/redrive", R"({"ids":["a","b","c"]})");
  CHECK(many.status == 413);
  CHECK(Str(Json(many.body).at("error").at("field")) == "ids");
}

TEST_CASE("a redrive body that names neither ids nor all redrives nothing",
          "[http][api]") {
  InProcess s(R"({"queue":{"workers":0}})");
  BuryBogusTask(s);
  auto dead = [&] {
    return Json(s.Get("/v1/queues").body)
        .at("queues")
        .at(0)
        .at("dead")
        .as_int64();
  };
  REQUIRE(dead() == 1);
  for (const char* body :
       {R"({})", R"({"id":["bogus:1"]})", R"({"task_ids":["bogus:1"]})",
        R"({"all":false})", R"({"all":"yes"})",
        R"({"all":true,"ids":["bogus:1"]})"}) {
    INFO(body);
    HttpResponse r = s.Post("/v1/dead-letters/redrive", body);
    CHECK(r.status == 400);
    CHECK(Str(Json(r.body).at("error").at("code")) == "invalid_argument");
    CHECK(dead() == 1);  // nothing moved
  }
  CHECK(Str(Json(s.Post("/v1/dead-letters/redrive", R"({"id":[]})").body)
                .at("error")
                .at("field")) == "id");
  HttpResponse all = s.Post("/v1/dead-letters/redrive", R"({"all":true})");
  REQUIRE(all.status == 200);
  CHECK(Json(all.body).at("redriven").at(0) == "bogus:1");
  CHECK(dead() == 0);
}

TEST_CASE("query parameters a route does not take, or given twice, are 400",
          "[http][api]") {
  InProcess s;
  struct Case {
    const char* target;
    const char* field;
  };
  for (const Case& c : {Case{"/v1/decisions?afer=5", "afer"},
                        Case{"/v1/decisions?limit=5&limit=100000", "limit"},
                        Case{"/v1/summaries?after=0&x", "x"},
                        Case{"/v1/instances?open=true&lvl=action", "lvl"},
                        Case{"/v1/locks?prefix=a&prefix=b", "prefix"},
                        Case{"/v1/outputs?cursor=3", "cursor"},
                        Case{"/v1/instances/1?relations=5", "relations"},
                        Case{"/v1/queues?name=converge", "name"},
                        Case{"/v1/actions/1?verbose=1", "verbose"}}) {
    INFO(c.target);
    HttpResponse r = s.Get(c.target);
    CHECK(r.status == 400);
    const bj::value body = Json(r.body);
    CHECK(Str(body.at("error").at("field")) == c.field);
    CHECK(absl::StrContains(Str(body.at("error").at("message")), c.field));
  }
  HttpResponse post = s.Post("/v1/actions?mdoe=queued", ActionJson(1));
  CHECK(post.status == 400);
  CHECK(Str(Json(post.body).at("error").at("field")) == "mdoe");
  // Nothing was decided.
  CHECK(s.Get("/v1/decisions").status == 200);
  CHECK(Json(s.Get("/v1/decisions").body).at("items").as_array().empty());
  // Routes that take none say so; the operational ones ignore them.
  HttpResponse end = s.Post("/v1/instances/1/end?force=1", "");
  CHECK(end.status == 400);
  CHECK(Str(Json(end.body).at("error").at("field")) == "force");
  CHECK(s.Get("/healthz?probe=lb").status == 200);
  CHECK(s.Get("/metrics?x=1").status == 200);
  // The parameters a route takes still work, percent-encoded too.
  CHECK(s.Get("/v1/decisions?after=0&limit=5").status == 200);
  CHECK(s.Get("/v1/locks?prefix=conv%65rge&limit=3").status == 200);
}

TEST_CASE("locks lists held leases and their age", "[http][api]") {
  InProcess s;
  CHECK(Json(s.Get("/v1/locks").body).at("locks").as_array().empty());
  LockStore* lock = s.service->manager()->stores().lock;
  REQUIRE(lock->TryAcquire("lease:x", "tok", absl::Seconds(60)).value());
  s.clock.Advance(absl::Seconds(5));
  bj::value held = Json(s.Get("/v1/locks").body);
  CHECK(Str(held.at("scope")) == "store");
  REQUIRE(held.at("locks").as_array().size() == 1);
  CHECK(Str(held.at("locks").at(0).at("key")) == "lease:x");
  CHECK(held.at("locks").at(0).at("this_process").as_bool());
  CHECK(held.at("locks").at(0).at("age_seconds").to_number<double>() == 5.0);
  CHECK(held.at("locks").at(0).at("expires_in_seconds").to_number<double>() ==
        55.0);
  // A lease another process took (straight on the store, past this
  // process's tracker) is listed too, without an age.
  auto* tracked = dynamic_cast<LockStoreWrapper*>(lock);
  REQUIRE(tracked != nullptr);
  REQUIRE(tracked->target()
              ->TryAcquire("lease:other", "theirs", absl::Seconds(30))
              .value());
  bj::value both = Json(s.Get("/v1/locks").body);
  REQUIRE(both.at("locks").as_array().size() == 2);
  CHECK(Str(both.at("locks").at(0).at("key")) == "lease:other");
  CHECK(Str(both.at("locks").at(0).at("token")) == "theirs");
  CHECK_FALSE(both.at("locks").at(0).at("this_process").as_bool());
  CHECK_FALSE(both.at("locks").at(0).as_object().contains("age_seconds"));
  CHECK_FALSE(both.at("truncated").as_bool());
  // prefix and limit.
  CHECK(Json(s.Get("/v1/locks?prefix=lease:x").body)
            .at("locks")
            .as_array()
            .size() == 1);
  bj::value first = Json(s.Get("/v1/locks?limit=1").body);
  CHECK(first.at("locks").as_array().size() == 1);
  CHECK(first.at("truncated").as_bool());
  CHECK_FALSE(Json(s.Get("/v1/locks?limit=2").body).at("truncated").as_bool());
  CHECK(s.Get("/v1/locks?limit=0").status == 400);
  REQUIRE(tracked->target()->Release("lease:other", "theirs").value());
  s.clock.Advance(absl::Seconds(60));  // expired
  CHECK(Json(s.Get("/v1/locks").body).at("locks").as_array().empty());
  REQUIRE(lock->TryAcquire("lease:y", "tok", absl::Seconds(60)).value());
  REQUIRE(lock->Release("lease:y", "tok").value());
  CHECK(Json(s.Get("/v1/locks").body).at("locks").as_array().empty());
}

TEST_CASE("the fingerprint is Alertmanager's", "[http][alertmanager]") {
  // prometheus/common model TestMetricToFingerprint.
  CHECK(Fingerprint({}) == 14695981039346656037ULL);
  CHECK(Fingerprint(
            {{"name", "garland, briggs"}, {"fear", "love is not enough"}}) ==
        5799056148416392346ULL);
  CHECK(FingerprintHex(5799056148416392346ULL) == "507a62d79ee76c9a");
}

TEST_CASE("POST /api/v2/alerts takes Alertmanager's payload",
          "[http][alertmanager]") {
  InProcess s;
  const std::string body =
      R"([{"labels":{"alertname":"Disk","instance":"h1","severity":"critical"},)"
      R"("annotations":{"summary":"x"},"startsAt":"2023-11-14T22:13:20Z",)"
      R"("generatorURL":"http://p"},)"
      R"({"labels":{"alertname":"Disk","instance":"h2","empty":""},)"
      R"("startsAt":"2023-11-14T22:13:20.5Z"}])";
  HttpResponse r = s.Post("/api/v2/alerts", body);
  REQUIRE(r.status == 200);
  const bj::array& res = Results(Json(r.body));
  REQUIRE(res.size() == 2);
  CHECK(Str(res[0].at("fingerprint")) ==
        FingerprintHex(Fingerprint({{"alertname", "Disk"},
                                    {"instance", "h1"},
                                    {"severity", "critical"}})));
  // Empty labels are dropped, as Alertmanager drops them.
  CHECK(
      Str(res[1].at("fingerprint")) ==
      FingerprintHex(Fingerprint({{"alertname", "Disk"}, {"instance", "h2"}})));
  CHECK(Str(res[0].at("outcome")) == "execute");
  CHECK(Str(res[1].at("outcome")) == "skip");  // grouped by alertname
  CHECK(res[0].at("converge_id") == res[1].at("converge_id"));
  // Prometheus re-sends firing alerts: the same action again.
  HttpResponse again = s.Post("/api/v2/alerts", body);
  CHECK(Results(Json(again.body))[0].at("replayed").as_bool());
  CHECK(Results(Json(again.body))[0].at("action_id") == res[0].at("action_id"));
  // Resolved (endsAt passed): another action, signal recovered.
  HttpResponse resolved = s.Post(
      "/api/v2/alerts",
      R"([{"labels":{"alertname":"Disk","instance":"h1","severity":"critical"},)"
      R"("startsAt":"2023-11-14T22:13:20Z","endsAt":"2023-11-14T22:13:19Z"}])");
  CHECK(resolved.status == 400);  // ends before it starts
  HttpResponse ended = s.Post(
      "/api/v2/alerts",
      R"([{"labels":{"alertname":"Disk","instance":"h1","severity":"critical"},)"
      R"("startsAt":"2023-11-14T22:13:20Z","endsAt":"2023-11-14T22:13:20Z"}])");
  REQUIRE(ended.status == 200);
  CHECK(Results(Json(ended.body))[0].at("action_id") != res[0].at("action_id"));
  CHECK_FALSE(Results(Json(ended.body))[0].at("replayed").as_bool());

  auto field = [&](const std::string& b) {
    HttpResponse e = s.Post("/api/v2/alerts", b);
    CHECK(e.status == 400);
    return Str(Json(e.body).at("error").at("field"));
  };
  CHECK(field(R"([{"annotations":{}}])") == "[0].labels");
  CHECK(field(R"([{"labels":{"a":"b"}},{"labels":{"x":1}}])") ==
        "[1].labels.x");
  CHECK(field(R"([{"labels":{"a b":"c"}}])") == "[0].labels.a b");
  CHECK(field(R"([{"labels":{"a":""}}])") == "[0].labels");
  CHECK(field(R"([{"labels":{"a":"b"},"startsAt":"yesterday"}])") ==
        "[0].startsAt");
  // Before 1970 (other than Go's zero time, "not set"): refused.
  CHECK(field(R"([{"labels":{"a":"b"},"startsAt":"1969-12-31T00:00:00Z"}])") ==
        "[0].startsAt");
  CHECK(s.Post("/api/v2/alerts",
               R"([{"labels":{"a":"zero"},"startsAt":"0001-01-01T00:00:00Z"}])")
            .status == 200);
  // As Alertmanager, empty labels go before names are checked.
  CHECK(s.Post("/api/v2/alerts", R"([{"labels":{"a":"c","bad-name":""}}])")
            .status == 200);
  // No startsAt: it starts at its endsAt, so that two occurrences with
  // different ends are two actions, and a re-sent one is a redelivery.
  auto id_of = [&](const std::string& b) {
    HttpResponse r = s.Post("/api/v2/alerts", b);
    REQUIRE(r.status == 200);
    return Results(Json(r.body))[0].at("action_id").as_int64();
  };
  const std::string end1 =
      R"([{"labels":{"a":"ends"},"endsAt":"2023-11-14T00:00:00Z"}])";
  const std::string end2 =
      R"([{"labels":{"a":"ends"},"endsAt":"2023-11-15T00:00:00Z"}])";
  CHECK(id_of(end1) != id_of(end2));
  CHECK(id_of(end1) == id_of(end1));
  HttpResponse not_array = s.Post("/api/v2/alerts", R"({"labels":{}})");
  CHECK(not_array.status == 400);
  CHECK(Str(Json(not_array.body).at("error").at("message")) ==
        "expected an array of alerts, got object");
}

TEST_CASE("POST /api/v2/alerts takes the valid alerts of a batch",
          "[http][alertmanager]") {
  InProcess s;
  const std::string big(5000, 'v');  // over the 4 KiB max_value_bytes
  const std::string body = absl::StrCat(
      R"([{"labels":{"alertname":"A","instance":"h1"}},)",
      R"({"labels":{"alertname":"B","a b":"c"}},)",
      R"({"labels":{"alertname":"C","instance":"h3"}},)",
      R"({"labels":{"alertname":"D"},"startsAt":"2023-11-14T22:13:20Z",)",
      R"("endsAt":"2023-11-14T22:13:19Z"},)",
      R"({"labels":{"alertname":"E","big":")", big, R"("}}])");
  HttpResponse r = s.Post("/api/v2/alerts", body);
  // As Alertmanager: a 400 naming the invalid alerts, the others taken.
  REQUIRE(r.status == 400);
  const bj::value doc = Json(r.body);
  CHECK(Str(doc.at("error").at("code")) == "invalid_argument");
  CHECK(Str(doc.at("error").at("field")) == "[1].labels.a b");
  const std::string message = Str(doc.at("error").at("message"));
  CHECK(absl::StartsWith(message, "3 of 5 refused"));
  for (const char* named : {"[1].labels.a b", "[3].endsAt", "[4]."}) {
    CHECK(absl::StrContains(message, named));  // every one named
  }
  const bj::array& res = Results(doc);
  REQUIRE(res.size() == 5);
  for (size_t i : {0, 2}) {
    INFO(i);
    CHECK(Str(res[i].at("outcome")) == "execute");
    CHECK(s.Get(absl::StrCat("/v1/actions/", res[i].at("action_id").as_int64()))
              .status == 200);
  }
  const std::pair<size_t, std::string> refused[] = {
      {1, "[1].labels.a b"}, {3, "[3].endsAt"}, {4, "[4]"}};
  for (const auto& [i, field] : refused) {
    INFO(i);
    CHECK(Str(res[i].at("error").at("code")) == "invalid_argument");
    CHECK(absl::StartsWith(Str(res[i].at("error").at("field")), field));
    // No id: nothing of it was stored (and the id of an alert whose
    // invalid labels were dropped could be another alert's).
    CHECK_FALSE(res[i].as_object().contains("action_id"));
  }
  CHECK(absl::StrContains(s.Get("/metrics").body,
                          "converged_alerts_invalid_total 3\n"));

  // Queued mode: the same, with the valid ones queued.
  InProcess queued(R"({"mode":"queued","queue":{"workers":0}})");
  HttpResponse q = queued.Post(
      "/api/v2/alerts",
      R"([{"labels":{"alertname":"Q"}},{"labels":{"":"x","a":""}}])");
  REQUIRE(q.status == 400);
  const bj::value qdoc = Json(q.body);
  CHECK(Str(qdoc.at("error").at("field")) == "[1].labels.");  // name ""
  CHECK(Str(Results(qdoc)[0].at("status")) == "queued");
  CHECK(Results(qdoc)[1].as_object().contains("error"));

  // A body that is not an array of alerts, or a wrong type in one alert,
  // still refuses the whole request (Alertmanager's schema check).
  HttpResponse typed = s.Post(
      "/api/v2/alerts", R"([{"labels":{"alertname":"T"}},{"labels":{"x":1}}])");
  CHECK(typed.status == 400);
  CHECK_FALSE(Json(typed.body).as_object().contains("results"));
  HttpResponse annotation = s.Post(
      "/api/v2/alerts",
      R"([{"labels":{"alertname":"T"},"annotations":{"summary":["x"]}}])");
  CHECK(annotation.status == 400);
  CHECK(Str(Json(annotation.body).at("error").at("field")) ==
        "[0].annotations.summary");
  CHECK_FALSE(Json(annotation.body).as_object().contains("results"));
  // As Alertmanager's Alert.Validate: an annotation name, a time after
  // 2262 (valid RFC 3339, but no action id can tell it apart) make one
  // alert invalid.
  HttpResponse per_alert = s.Post(
      "/api/v2/alerts",
      R"([{"labels":{"alertname":"U"},"annotations":{"bad name":"x"}},)"
      R"({"labels":{"alertname":"V"},"startsAt":"2300-01-01T00:00:00Z"},)"
      R"({"labels":{"alertname":"W"}}])");
  REQUIRE(per_alert.status == 400);
  const bj::value pdoc = Json(per_alert.body);
  CHECK(Str(pdoc.at("error").at("field")) == "[0].annotations.bad name");
  CHECK(Str(Results(pdoc)[1].at("error").at("field")) == "[1].startsAt");
  CHECK(Str(Results(pdoc)[2].at("outcome")) == "execute");
  CHECK(absl::StrContains(s.Get("/metrics").body,
                          "converged_alerts_invalid_total 5\n"));
}

TEST_CASE("the Alertmanager webhook receiver", "[http][alertmanager]") {
  InProcess s;
  const std::string fp =
      FingerprintHex(Fingerprint({{"alertname", "Up"}, {"job", "node"}}));
  const std::string body = absl::StrCat(
      R"({"version":"4","groupKey":"{}:{alertname=\"Up\"}","status":"firing",)"
      R"("receiver":"converged","groupLabels":{"alertname":"Up"},)"
      R"("commonLabels":{},"commonAnnotations":{},"externalURL":"http://am",)"
      R"("truncatedAlerts":0,"alerts":[{"status":"firing","labels":)"
      R"({"alertname":"Up","job":"node"},"annotations":{},)"
      R"("startsAt":"2023-11-14T22:13:20Z","endsAt":"0001-01-01T00:00:00Z",)"
      R"("generatorURL":"","fingerprint":")",
      fp, R"("}]})");
  HttpResponse r = s.Post("/v1/alertmanager/webhook", body);
  REQUIRE(r.status == 200);
  CHECK(Str(Results(Json(r.body))[0].at("fingerprint")) == fp);
  CHECK(Str(Results(Json(r.body))[0].at("outcome")) == "execute");
  std::string wrong = body;
  wrong.replace(wrong.find(fp), fp.size(), "0000000000000000");
  HttpResponse bad = s.Post("/v1/alertmanager/webhook", wrong);
  CHECK(bad.status == 400);
  CHECK(Str(Json(bad.body).at("error").at("field")) == "alerts[0].fingerprint");
  HttpResponse no_alerts =
      s.Post("/v1/alertmanager/webhook", R"({"version":"4"})");
  CHECK(Str(Json(no_alerts.body).at("error").at("field")) == "alerts");
  HttpResponse status =
      s.Post("/v1/alertmanager/webhook",
             R"({"alerts":[{"status":"gone","labels":{"a":"b"}}]})");
  CHECK(Str(Json(status.body).at("error").at("field")) == "alerts[0].status");
}

TEST_CASE("the config: defaults, the minimal file, errors naming the key",
          "[http][config]") {
  absl::StatusOr<ServiceConfig> empty = ParseServiceConfig("{}");
  REQUIRE(empty.ok());
  CHECK(empty->listen == "127.0.0.1:9117");
  CHECK(empty->store == "sqlite:converged.db");
  CHECK(empty->mode == SubmitMode::kSync);
  CHECK(empty->limits.max_body_bytes == 4 << 20);
  absl::StatusOr<ServiceConfig> minimal = ParseServiceConfig(
      R"({"listen":"127.0.0.1:9117","store":"sqlite:/tmp/x.db"})");
  REQUIRE(minimal.ok());
  CHECK(minimal->store == "sqlite:/tmp/x.db");
  auto error = [](const char* text) {
    absl::StatusOr<ServiceConfig> c = ParseServiceConfig(text);
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(c.status().message());
  };
  CHECK(error(R"({"limits":{"max_bdy_bytes":1}})")
            .find("limits.max_bdy_bytes: unknown key") != std::string::npos);
  CHECK(error(R"({"limits":{"max_body_bytes":"1"}})")
            .find("limits.max_body_bytes: expected an integer, got string") !=
        std::string::npos);
  CHECK(error(R"({"listen":"nowhere"})").find("listen:") != std::string::npos);
  CHECK(error(R"({"mode":"fast"})").find("mode:") != std::string::npos);
  CHECK(error(R"({"alertmanager":{"converge_config":{"is_enabled":true}}})")
            .find("alertmanager.converge_config") != std::string::npos);
  CHECK(error(R"({"outputs":{"webhook":{"url":"https://x"}}})")
            .find("outputs.webhook.url") != std::string::npos);
  CHECK(error("[").find("malformed JSON") != std::string::npos);

  // The configured rules are checked against the manager's limits at
  // start, not as a 400 for every request that uses them.
  std::string values;
  for (int i = 0; i < 300; ++i) absl::StrAppend(&values, i ? "," : "", i);
  for (const char* key : {"alertmanager", "default"}) {
    const std::string rule = absl::StrCat(
        R"({"is_enabled":true,"converge_func":"collect","timedelta":60,)",
        R"("count":1,"condition":[{"dimension":"ip","value":[)", values,
        "]}]}");
    const std::string text =
        std::string(key) == "alertmanager"
            ? absl::StrCat(R"({"store":"memory:","alertmanager":{)",
                           R"("converge_config":)", rule, "}}")
            : absl::StrCat(R"({"store":"memory:","default_converge_config":)",
                           rule, "}");
    absl::StatusOr<ServiceConfig> c = ParseServiceConfig(text);
    REQUIRE(c.ok());
    VirtualClock clock;
    absl::StatusOr<std::unique_ptr<Service>> s = Service::Create(*c, &clock);
    INFO(s.status().ToString());
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(s.status().message(),
                            "values in all exceed the limit of 256"));
    CHECK(absl::StrContains(s.status().message(),
                            std::string(key) == "alertmanager"
                                ? "alertmanager.converge_config"
                                : "default_converge_config"));
  }
}

TEST_CASE("POST /v1/actions refuses integers beyond 64 bits, naming them",
          "[http]") {
  InProcess s;
  // Boost.JSON reads such a literal as a float; the item is then checked
  // again as text, where it no longer looks like an integer.
  HttpResponse r = s.Post(
      "/v1/actions",
      R"([{"id":1,"context":{"n":1}},{"id":2,"context":{"n":18446744073709551616},)"
      R"("converge_config":{}}])");
  CHECK(r.status == 400);
  CHECK(Str(Json(r.body).at("error").at("field")) == "[1].context.n");
  CHECK(absl::StrContains(Str(Json(r.body).at("error").at("message")),
                          "integer 18446744073709551616 is out of the 64-bit "
                          "range"));
  CHECK(s.Get("/v1/actions/1").status == 404);  // nothing applied
}

}  // namespace
}  // namespace converge::service::testing
