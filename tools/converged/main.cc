// converged: the converge HTTP service (docs/http-api.md).
//
//   converged [--config FILE] [--listen HOST:PORT] [--store URI]
//             [--port-file FILE]
//
// Without --config it runs on the defaults (config.h). --listen and
// --store override the config's. --port-file writes the bound port once
// the server accepts connections (for tests and scripts that listen on
// port 0). SIGTERM or SIGINT drains: no new connections, 503 for new
// requests, the requests in flight are answered, the workers finish their
// current task (what is queued stays in the store), then exit 0.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "config.h"
#include "converge/clock.h"
#include "http_server.h"
#include "service.h"

namespace {

int Usage() {
  std::cerr << "usage: converged [--config FILE] [--listen HOST:PORT] "
               "[--store URI] [--port-file FILE]\n"
               "docs/http-api.md describes the config file and the API.\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace converge::service;
  std::string config_path, listen, store, port_file;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    bool ok = true;
    if (arg == "--config") {
      ok = value(&config_path);
    } else if (arg == "--listen") {
      ok = value(&listen);
    } else if (arg == "--store") {
      ok = value(&store);
    } else if (arg == "--port-file") {
      ok = value(&port_file);
    } else if (arg == "-h" || arg == "--help") {
      Usage();
      return 0;
    } else {
      std::cerr << "converged: unknown argument \"" << arg << "\"\n";
      return Usage();
    }
    if (!ok) {
      std::cerr << "converged: " << arg << " needs a value\n";
      return Usage();
    }
  }

  ServiceConfig config = DefaultServiceConfig();
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    if (!in) {
      std::cerr << "converged: cannot read config " << config_path << ": "
                << std::strerror(errno) << "\n";
      return 2;
    }
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<ServiceConfig> parsed = ParseServiceConfig(text.str());
    if (!parsed.ok()) {
      std::cerr << "converged: " << config_path << ": "
                << parsed.status().message() << "\n";
      return 2;
    }
    config = *std::move(parsed);
  }
  if (!listen.empty()) {
    std::string host;
    uint16_t port = 0;
    if (absl::Status st = SplitHostPort(listen, "--listen", &host, &port);
        !st.ok()) {
      std::cerr << "converged: " << st.message() << "\n";
      return 2;
    }
    config.listen = listen;
  }
  if (!store.empty()) config.store = store;

  // SIGTERM and SIGINT go to sigwait below, in this thread only: block
  // them before any thread starts, so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<Service>> service =
      Service::Create(config, converge::RealClock::Default());
  if (!service.ok()) {
    std::cerr << "converged: " << service.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Create(service->get());
  if (!server.ok()) {
    std::cerr << "converged: " << server.status().message() << "\n";
    return 1;
  }
  if (absl::Status st = (*service)->Start(); !st.ok()) {
    std::cerr << "converged: " << st.message() << "\n";
    return 1;
  }
  (*server)->Start();
  std::cerr << "converged: listening on port " << (*server)->port()
            << " (store " << config.store << ", "
            << (config.mode == SubmitMode::kSync ? "sync" : "queued")
            << " mode)\n";
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << (*server)->port() << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }

  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "converged: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
            << ": draining\n";
  const int64_t left = (*server)->Drain(config.drain_timeout);
  (*service)->Stop(absl::Seconds(2));
  if (left > 0) {
    std::cerr << "converged: " << left
              << " requests were still in flight after drain_timeout_ms\n";
  }
  std::cerr << "converged: stopped\n";
  return 0;
}
