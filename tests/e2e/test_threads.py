"""--threads 1 and --threads 2 give byte-identical output: every shard,
index, manifest and ledger line (run.json records timings and the thread
count, so only its totals are compared).  Small list units make many
tasks, so the two threads really interleave."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
pe.demo_data(args, data, samples=80, seed=11)
spec = json.load(open(os.path.join(data, "spec.json")))
spec["sources"][1]["records_per_unit"] = 6
spec["sources"][2]["records_per_unit"] = 2
for st in spec["stages"]:
    if st["stage"] == "reshard":
        st["shuffle"] = "global"
spec["output"]["samples_per_shard"] = 10
spec_path = pe.write_spec(os.path.join(data, "spec-threads.json"), spec)

one, two = os.path.join(args.tmp, "t1"), os.path.join(args.tmp, "t2")
pe.run_spec(args, spec_path, one, threads=1)
pe.run_spec(args, spec_path, two, threads=2)
vctest.expect(len(pe.shards(one, "demo")) >= 5, "%d shards" % len(pe.shards(one, "demo")))
pe.compare_trees(one, two, "--threads 1 vs --threads 2")
vctest.expect(pe.run_json(one)["totals"] == pe.run_json(two)["totals"],
              "run.json totals equal: %s" % pe.run_json(one)["totals"])
print("PASS")
