# FindMariaDB: finds MariaDB Connector/C (Debian 12: libmariadb-dev 3.3),
# which ships no CMake package; it speaks the MySQL protocol, so it serves
# MySQL 5.7/8 and MariaDB servers alike. Defines the imported target
# MariaDB::MariaDB and MariaDB_FOUND, MariaDB_VERSION, MariaDB_INCLUDE_DIR,
# MariaDB_LIBRARY.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_MariaDB QUIET libmariadb)
endif()
find_path(MariaDB_INCLUDE_DIR NAMES mysql.h
  HINTS ${PC_MariaDB_INCLUDE_DIRS} PATH_SUFFIXES mariadb)
find_library(MariaDB_LIBRARY NAMES mariadb HINTS ${PC_MariaDB_LIBRARY_DIRS})
if(MariaDB_INCLUDE_DIR AND EXISTS "${MariaDB_INCLUDE_DIR}/mariadb_version.h")
  file(STRINGS "${MariaDB_INCLUDE_DIR}/mariadb_version.h" _mariadb_version_line
    REGEX "^#define MARIADB_PACKAGE_VERSION \"[0-9.]+\"")
  string(REGEX REPLACE ".*\"([0-9.]+)\".*" "\\1" MariaDB_VERSION
    "${_mariadb_version_line}")
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(MariaDB
  REQUIRED_VARS MariaDB_LIBRARY MariaDB_INCLUDE_DIR
  VERSION_VAR MariaDB_VERSION)
if(MariaDB_FOUND AND NOT TARGET MariaDB::MariaDB)
  add_library(MariaDB::MariaDB UNKNOWN IMPORTED)
  set_target_properties(MariaDB::MariaDB PROPERTIES
    IMPORTED_LOCATION "${MariaDB_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${MariaDB_INCLUDE_DIR}")
endif()
mark_as_advanced(MariaDB_INCLUDE_DIR MariaDB_LIBRARY)
