-- wrk script: each thread cycles through its own file of pre-signed deliveries
-- (svix-id TAB svix-timestamp TAB svix-signature TAB body, one a line) and the run prints a
-- JSON summary that bench_ingest.py reads.
local thread_count = 0

function setup(thread)
  thread:set("thread_number", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  deliveries = {}
  local path = args[1] .. "/requests-" .. thread_number .. ".tsv"
  for line in io.lines(path) do
    local svix_id, timestamp, signature, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    deliveries[#deliveries + 1] = wrk.format("POST", "/webhooks/clerk", {
      ["svix-id"] = svix_id,
      ["svix-timestamp"] = timestamp,
      ["svix-signature"] = signature,
      ["Content-Type"] = "application/json",
    }, body)
  end
  position = 0
end

function request()
  position = position + 1
  if position > #deliveries then
    position = 1
  end
  return deliveries[position]
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
