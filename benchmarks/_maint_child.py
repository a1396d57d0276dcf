"""Child process of bench_maintain.py: runs this collection's engine once and prints its result as JSON.

Run in its own process so the benchmark can read the engine's peak RSS (os.wait4).  Arguments: one
JSON object (host, port, database, now, mode = "module_data" | "run", batch_size).  The password of
the benchmark's private server comes from the test harness, not from the command line.
"""

import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from harness.collection import ensure_collection_link  # noqa: E402
from harness.mariadb import ROOT_PASSWORD  # noqa: E402

ensure_collection_link()

from ansible_collections.pandorafms.server.plugins.module_utils._connection import (  # noqa: E402
    ConnectionSettings, connect, existing_tables)
from ansible_collections.pandorafms.server.plugins.module_utils._maintain import (  # noqa: E402
    MaintenanceContext, run_maintenance)
from ansible_collections.pandorafms.server.plugins.module_utils._purge import (  # noqa: E402
    purge_steps, resolve_batch_size, resolve_thresholds)
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import TConfig  # noqa: E402


def main():
    args = json.loads(sys.argv[1])
    settings = ConnectionSettings(host=args["host"], port=args["port"], user="root", password=ROOT_PASSWORD,
                                  database=args["database"], connect_timeout=30)
    if args["mode"] == "run":
        result = run_maintenance(settings, None, require_master=False, now=args["now"],
                                 batch_size=args.get("batch_size"))
        out = {"steps": result["steps"], "duration": result["duration"], "totals": result["totals"]}
    else:
        conn = connect(settings)
        tconfig = TConfig.load(conn)
        ctx = MaintenanceContext(conn, tconfig, now=args["now"],
                                 batch_size=resolve_batch_size(tconfig, args.get("batch_size")),
                                 thresholds=resolve_thresholds(tconfig, {}, ["purge"]), tables=existing_tables(conn))
        step = [s for s in purge_steps() if s.name == args["mode"]][0]
        out = {"steps": [r.as_dict() for r in step.run(ctx)]}
        conn.close()
    sys.stdout.write(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
