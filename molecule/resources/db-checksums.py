"""Molecule helper: print CHECKSUM TABLE and the row count of every table of a database as JSON.

Usage: db-checksums CLIENT_CNF DATABASE
The client option file holds the credentials (no password on the command line); the queries
run through the real mariadb client.
"""
import json
import subprocess
import sys


def client(cnf, database, sql):
    out = subprocess.run(["/usr/bin/mariadb", "--defaults-extra-file=" + cnf, "--batch", "--skip-column-names",
                          "--raw", database], input=sql, stdout=subprocess.PIPE, check=True,
                         universal_newlines=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def main():
    cnf, database = sys.argv[1], sys.argv[2]
    tables = [row[0] for row in client(cnf, database, "SELECT table_name FROM information_schema.tables"
                                       " WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"
                                       " ORDER BY table_name;")]
    sums = {}
    if tables:
        sql = "".join("CHECKSUM TABLE `%s`; SELECT '%s', COUNT(*) FROM `%s`;\n" % (t, t, t) for t in tables)
        rows = client(cnf, database, sql)
        for name, checksum in rows[0::2]:
            sums[name.split(".", 1)[1]] = checksum
        for name, count in rows[1::2]:
            sums[name] += "/%s" % count
    print(json.dumps(sums, sort_keys=True))


if __name__ == "__main__":
    main()
