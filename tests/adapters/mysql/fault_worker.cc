// A worker of the MySQL fault test (fault_test.cc,
// tests/support/fault_drain.h): a Processor on MySQL alone (leases,
// windows, queue and repo), reconnecting after the server restarts.
//
//   converge_mysql_fault_worker SOCKET USER PASSWORD DATABASE OUT_FILE
//                               [one_transaction]
//
// With the last argument, MysqlOptions::one_transaction is on.

#include <cstdio>
#include <cstring>

#include "converge/mysql/mysql_store.h"
#include "support/fault_drain.h"

int main(int argc, char** argv) {
  if ((argc != 6 && argc != 7) ||
      (argc == 7 && std::strcmp(argv[6], "one_transaction") != 0)) {
    std::fprintf(stderr,
                 "usage: %s SOCKET USER PASSWORD DATABASE OUT_FILE "
                 "[one_transaction]\n",
                 argv[0]);
    return 2;
  }
  converge::fault::PrepareFaultWorker();
  converge::mysql::MysqlOptions o;
  o.unix_socket = argv[1];
  o.user = argv[2];
  o.password = argv[3];
  o.database = argv[4];
  o.connect_timeout = absl::Seconds(1);
  o.read_timeout = absl::Seconds(5);
  o.write_timeout = absl::Seconds(5);
  o.pool_size = 4;
  o.schema = converge::mysql::SchemaMode::kCheck;  // the test migrated it
  o.one_transaction = argc == 7;
  auto stores = converge::mysql::OpenMysqlStores(o);
  if (!stores.ok()) {
    std::fprintf(stderr, "worker: %s\n", stores.status().ToString().c_str());
    return 1;
  }
  return converge::fault::RunFaultWorker(stores->view(), argv[5]);
}
