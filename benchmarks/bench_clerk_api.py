"""The Clerk API client against the fake Clerk at Clerk's production limit (1,000 requests per
10 s), on loopback: what a backfill walk and a reconcile's one-by-one lookups cost.

- walk: every user by cursor, 500 a page, with and without the next page fetched ahead,
  while a simulated write of each page takes `--write-ms`; Clerk's round trip is simulated
  by `--latency-ms` on the fake;
- lookups: `get_user` from `--threads` threads sharing one client, as a reconcile confirms
  missing users: one thread is bound by the round trip (1/latency a second), enough threads
  by the budget (100 a second once the first 1,000 of a window are spent).

The fake answers 429 past its budget, as Clerk does: the figures include how many it sent
(none is the point). Prints a table; timings on a shared machine are indicative only.

    python -m benchmarks.bench_clerk_api [--users 20000] [--lookups 2000] [--threads 16]
        [--latency-ms 80] [--write-ms 10]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from cpn_sync.fake_clerk import FakeClerk, running
from workers.clerk.api import ClerkClient
from workers.clerk.config import ClerkConfig

KEY = "sk_live_benchmark_of_the_clerk_api_client"  # a production key: budget 1,000 per 10 s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=80.0)
    parser.add_argument("--write-ms", type=float, default=10.0)
    args = parser.parse_args()

    fake = FakeClerk.seeded(args.users, secret_key=KEY, rate_limit=1000)
    fake.latency_seconds = args.latency_ms / 1000
    rows = []
    # One client for every run: its budget is the instance's, as Clerk counts it.
    with running(fake) as served, ClerkClient(ClerkConfig(KEY, api_url=served.api_url)) as client:
        for prefetch in (False, True):
            before = len(fake.recorded())
            started = time.perf_counter()
            walked = 0
            for page in client.list_users(prefetch=prefetch):
                walked += len(page.users)
                time.sleep(args.write_ms / 1000)
            seconds = time.perf_counter() - started
            requests = fake.recorded()[before:]
            assert walked == args.users, (walked, args.users)
            throttled = sum(1 for request in requests if request.status == 429)
            label = f"walk, prefetch {'on' if prefetch else 'off'}"
            rows.append((label, walked, len(requests), seconds, walked / seconds, throttled))

        ids = list(fake.users)[: args.lookups]
        before = len(fake.recorded())
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            found = sum(user is not None for user in pool.map(client.get_user, ids))
        seconds = time.perf_counter() - started
        requests = fake.recorded()[before:]
        assert found == len(ids)
        throttled = sum(1 for request in requests if request.status == 429)
        label = f"get_user, {args.threads} threads"
        rows.append((label, len(ids), len(requests), seconds, len(ids) / seconds, throttled))

    print(f"fake Clerk: {args.users} users, latency {args.latency_ms:g} ms, 1,000 requests/10 s;")
    print(f"simulated write {args.write_ms:g} ms a page")
    print(
        f"{'run':26s} {'users':>7s} {'requests':>9s} {'seconds':>8s} {'users/s':>9s} {'429s':>5s}"
    )
    for label, users, requests_count, seconds, rate, throttled in rows:
        print(
            f"{label:26s} {users:7d} {requests_count:9d} {seconds:8.2f} {rate:9.0f} {throttled:5d}"
        )


if __name__ == "__main__":
    main()
