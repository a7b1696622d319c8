// A bounded loopback load generator for POST /api/v2/alerts, the same
// load for converged and prometheus-alertmanager
// (bench/http_vs_alertmanager.sh):
// `--requests` requests of `--per-request` alerts, over `--groups` groups,
// from `--threads` keep-alive connections, each alert a distinct label set
// {alertname=BenchAlert, grp=g<k % groups>, instance=host-<k>,
// severity=critical|warning} with an annotation, startsAt now, endsAt in
// an hour and a generatorURL (alerting-anchors.md, section 5.4). Bodies
// are serialized before the clock starts. Stops after `--requests` or
// `--deadline-seconds`. Prints one JSON line: requests, alerts, errors,
// elapsed_s, alerts_per_s, req_p50_ms, req_p99_ms.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "http_client.h"

namespace {

struct Options {
  int port = 0;
  int requests = 1000;
  int per_request = 100;
  int groups = 1000;
  int threads = 1;
  int offset = 0;
  int deadline_seconds = 300;
  std::string target = "/api/v2/alerts";
};

int Usage() {
  std::fprintf(
      stderr,
      "usage: converge_http_load --port P [--requests N] [--per-request N] "
      "[--groups N] [--threads N] [--offset N] [--deadline-seconds S] "
      "[--target PATH]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return Usage();
    const char* v = argv[++i];
    if (a == "--port")
      o.port = std::atoi(v);
    else if (a == "--requests")
      o.requests = std::atoi(v);
    else if (a == "--per-request")
      o.per_request = std::atoi(v);
    else if (a == "--groups")
      o.groups = std::atoi(v);
    else if (a == "--threads")
      o.threads = std::atoi(v);
    else if (a == "--offset")
      o.offset = std::atoi(v);
    else if (a == "--deadline-seconds")
      o.deadline_seconds = std::atoi(v);
    else if (a == "--target")
      o.target = v;
    else
      return Usage();
  }
  if (o.port <= 0 || o.requests < 1 || o.per_request < 1 || o.groups < 1 ||
      o.threads < 1) {
    return Usage();
  }
  const absl::Time now = absl::Now();
  const std::string starts =
      absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone());
  const std::string ends = absl::FormatTime(
      absl::RFC3339_full, now + absl::Hours(1), absl::UTCTimeZone());
  std::vector<std::string> bodies(static_cast<size_t>(o.requests));
  for (int r = 0; r < o.requests; ++r) {
    std::string& b = bodies[static_cast<size_t>(r)];
    b = "[";
    for (int i = 0; i < o.per_request; ++i) {
      const int64_t k = o.offset + static_cast<int64_t>(r) * o.per_request + i;
      if (i > 0) b += ",";
      absl::StrAppend(&b, R"({"labels":{"alertname":"BenchAlert","grp":"g)",
                      k % o.groups, R"(","instance":"host-)", k,
                      R"(","severity":")", k % 2 == 0 ? "critical" : "warning",
                      R"("},"annotations":{"summary":"bench alert )", k,
                      R"("},"startsAt":")", starts, R"(","endsAt":")", ends,
                      R"(","generatorURL":"http://127.0.0.1/bench"})");
    }
    b += "]";
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(o.deadline_seconds);
  std::atomic<int> next{0};
  std::atomic<int> errors{0};
  std::mutex mu;
  std::vector<double> latencies;
  const absl::Time t0 = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&] {
      std::unique_ptr<converge::service::HttpConnection> c;
      std::vector<double> mine;
      for (;;) {
        const int r = next.fetch_add(1);
        if (r >= o.requests || absl::Now() > deadline) break;
        if (!c) {
          auto conn = converge::service::HttpConnection::Connect(
              "127.0.0.1", static_cast<uint16_t>(o.port), absl::Seconds(30));
          if (!conn.ok()) {
            ++errors;
            continue;
          }
          c = *std::move(conn);
        }
        const absl::Time start = absl::Now();
        auto resp =
            c->Request("POST", o.target, bodies[static_cast<size_t>(r)]);
        mine.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
        if (!resp.ok()) {
          ++errors;
          c.reset();
        } else if (resp->status < 200 || resp->status > 299) {
          ++errors;
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  for (std::thread& t : threads) t.join();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - t0);
  std::sort(latencies.begin(), latencies.end());
  const size_t n = latencies.size();
  const double p50 = n > 0 ? latencies[n / 2] : 0;
  const double p99 = n > 0 ? latencies[std::min(n - 1, n * 99 / 100)] : 0;
  std::printf(
      "{\"requests\":%zu,\"alerts\":%zu,\"errors\":%d,\"threads\":%d,"
      "\"elapsed_s\":%.3f,\"alerts_per_s\":%.0f,\"req_p50_ms\":%.2f,"
      "\"req_p99_ms\":%.2f}\n",
      n, n * static_cast<size_t>(o.per_request), errors.load(), o.threads,
      elapsed,
      static_cast<double>(n * static_cast<size_t>(o.per_request)) / elapsed,
      p50, p99);
  return errors.load() == 0 ? 0 : 1;
}
