"""Write a stress scenario of many orgs, healthy, dead and exhausted in turn.

    python benchmarks/stress_orgs.py OUT.toml [--orgs N] [--users U] [--calls-per-hour R]
                                              [--duration D] [--name NAME] [--mix MIX]

With `--mix mixed` (the default), org i is, by i mod 3:
  0 healthy:   credits 3.00, recharge 2.00 below 1.00 with a valid card (recharges often);
  1 dead:      credits 0.50, recharge below 1.00 with a card expired before the start: the first
               attempt fails, the 0.50 is soon spent, and then every credit-paid call is blocked;
  2 exhausted: no credits at all: once the 10-minute-a-user pool is dry, calls are blocked.
With `--mix stuck`, org i is, by i mod 2:
  0 stuck:     no credits, a recharge of one increment's cost (0.012) below 1.00 with a valid
               card: the balance never reaches the trigger, so every org instant recharges and
               the org is stepped one increment at a time;
  1 retrying:  the same with a card expired before the start, retried every second: each
               credit-paid call is blocked and each of the org's instants a second apart
               holds a failing attempt.
Each org has U users and one domestic traffic source of R calls/h of ~3 minutes.

benchmarks/stress_mixed_orgs.toml is `--orgs 30 --users 5 --calls-per-hour 2000 --duration 16h`;
`callsim bench` writes the 10,000-org one (`--orgs 10000 --users 1 --calls-per-hour 10`) itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HEADER = """\
# {name}: {orgs:,} orgs of {users} user(s), {rate:,} domestic calls/h each, for {duration};
# {kinds}
# Written by: python benchmarks/stress_orgs.py {args}
# `callsim bench` reports its calls per second as a "stress" row.

[simulation]
name = "{name}"
seed = 13
start = "2026-11-02T00:00:00Z"
duration = "{duration}"
currency = "USD"

[plans]
domestic_minutes = {{ default = 10 }}

[[tariff]]
prefix = "1"
country = "US"
zone = "A"
per_minute = "0.012"
increment = "60/60"
"""

KINDS = {
    "mixed": "healthy, dead (card expired, credits spent) and exhausted (no credits, pool dry) in turn.",
    "stuck": "stuck below the trigger (recharging at every instant) and retrying an expired card in turn.",
}
MIXES = {
    "mixed": (
        '[orgs.credits]\ninitial = "3.00"\nauto_recharge = true\nrecharge_below = "1.00"\n'
        'recharge_amount = "2.00"\ncard_expires = "2027-06-30"\n',
        '[orgs.credits]\ninitial = "0.50"\nauto_recharge = true\nrecharge_below = "1.00"\n'
        'recharge_amount = "2.00"\ncard_expires = "2026-10-31"\nretry_after = "24h"\n',
        "",
    ),
    "stuck": (
        '[orgs.credits]\ninitial = "0"\nauto_recharge = true\nrecharge_below = "1.00"\n'
        'recharge_amount = "0.012"\ncard_expires = "2027-06-30"\n',
        '[orgs.credits]\ninitial = "0"\nauto_recharge = true\nrecharge_below = "1.00"\n'
        'recharge_amount = "0.012"\ncard_expires = "2026-10-31"\nretry_after = "1s"\n',
    ),
}

ORG = """
[[orgs]]
id = "{org}"
{credits}[[orgs.users]]
group = "{org}-staff"
count = {users}
country = "US"
licenses = ["phone_system", "domestic_calling_plan", "communications_credits"]

[[traffic]]
org = "{org}"
type = "domestic"
calls_per_hour = {rate}
holding_mean = "3m"
"""


def stress_orgs_toml(orgs: int, users: int, rate: int, duration: str, name: str, args: str,
                     mix: str = "mixed") -> str:
    """The scenario's TOML text."""
    width = len(str(orgs - 1))
    credits = MIXES[mix]
    parts = [HEADER.format(name=name, orgs=orgs, users=users, rate=rate, duration=duration, args=args,
                           kinds=KINDS[mix])]
    for i in range(orgs):
        parts.append(ORG.format(org=f"org{i:0{width}d}", credits=credits[i % len(credits)], users=users, rate=rate))
    return "".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--orgs", type=int, default=30)
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--calls-per-hour", type=int, default=2000)
    parser.add_argument("--duration", default="16h")
    parser.add_argument("--name", default="stress_mixed_orgs")
    parser.add_argument("--mix", choices=sorted(MIXES), default="mixed")
    a = parser.parse_args()
    args = (f"{a.out.name} --orgs {a.orgs} --users {a.users} --calls-per-hour {a.calls_per_hour} "
            f"--duration {a.duration} --name {a.name}" + (f" --mix {a.mix}" if a.mix != "mixed" else ""))
    a.out.write_text(stress_orgs_toml(a.orgs, a.users, a.calls_per_hour, a.duration, a.name, args, a.mix))


if __name__ == "__main__":
    main()
