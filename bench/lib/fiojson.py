#!/usr/bin/python3
# fiojson.py FILE METRIC: print one number from fio's JSON output, summed over jobs.
# METRIC: read-mib, write-mib (MiB/s), read-iops, write-iops.  Prints
# "VALUE UNITS": the metric and the I/Os (or MiB) done.
import json, sys

text = open(sys.argv[1]).read()
data = json.loads(text[text.index("{"):])
rw, kind = sys.argv[2].split("-")
total = units = 0.0
for job in data["jobs"]:
    if job.get("error"):
        sys.exit("fio job %s failed: error %s" % (job["jobname"], job["error"]))
    d = job[rw]
    total += d["bw_bytes"] / 1048576.0 if kind == "mib" else d["iops"]
    units += d["io_bytes"] / 1048576.0 if kind == "mib" else d["total_ios"]
    if d["total_ios"] == 0 if "total_ios" in d else d["io_bytes"] == 0:
        sys.exit("fio job %s did no %s I/O" % (job["jobname"], rw))
print("%.3f %.3f" % (total, units))
