"""Benchmark: what record sharing costs a query, on ~10,000 Private Accounts.

Run ``python bench/sharing.py [--records 10000] [--store postgresql://...]``. One org, one run:

1. 10 users in a Rep role under a Manager, plus one user in a public group; Accounts spread over the reps.
2. The same queries run (warm plan cache; median of many runs) as:
   - the admin (no sharing condition at all): the baseline;
   - a rep with the organization-wide default only (``OwnerId IN (...)``);
   - the same rep after 1,000 manual shares (AccountShare; half to the reps, half to a group member), two
     criteria-based rules (one reaching the reps) and an owner-based rule sharing another rep's records with the
     Rep role: ``OwnerId IN (...) OR Id IN (SELECT AccountId FROM AccountShare ...) OR <criteria> OR OwnerId IN
     (...)``;
   - the group member, who sees records only through a criteria rule and manual shares.
3. Prints the medians and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from interlink.app.setup_users import create_user
from interlink.app.sharing import apply_sharing_metadata
from interlink.testing import local_org

QUERIES = {
    "count": "SELECT COUNT() FROM Account",
    "page": "SELECT Id, Name, Industry FROM Account ORDER BY Name LIMIT 200",
    "filtered": "SELECT Id, Name FROM Account WHERE Industry = 'Energy' AND AnnualRevenue > 500000 LIMIT 200",
    "child": "SELECT Id, (SELECT Id FROM Opportunities) FROM Account WHERE Industry = 'Retail' LIMIT 50",
}


def median_ms(org, soql: str, context, runs: int) -> float:  # type: ignore[no-untyped-def]
    org.query.execute(soql, context)  # compile once
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        org.query.execute(soql, context)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--store", default="")
    args = parser.parse_args()
    random.seed(7)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project = root / "project"
        (project / "metadata" / "objects").mkdir(parents=True)
        (project / "metadata" / "objects" / "Account.yaml").write_text("name: Account\nsharingModel: Private\n")
        with local_org(root / "org", store=args.store, project_dir=project, bulk_workers=0) as org:
            admin = org.admin_context().as_system()
            (manager,) = org.records.create(admin, "UserRole", [{"Name": "Manager", "DeveloperName": "Manager"}])
            (rep,) = org.records.create(admin, "UserRole", [{"Name": "Rep", "DeveloperName": "Rep",
                                                             "ParentRoleId": manager.id}])
            reps = []
            for i in range(10):
                user_id, _ = create_user(org, f"rep{i}@bench.test", last_name=f"Rep{i}")
                org.records.update(admin, "User", [{"Id": user_id, "UserRoleId": rep.id}])
                reps.append(user_id)
            member, _ = create_user(org, "member@bench.test", last_name="Member")
            industries = ["Energy", "Retail", "Banking", "Media"]
            ids: list[str] = []
            started = time.perf_counter()
            for start in range(0, args.records, 2000):
                batch = [{"Name": f"Account {n:06d}", "Industry": random.choice(industries),
                          "AnnualRevenue": random.randint(0, 1_000_000), "OwnerId": reps[n % len(reps)]}
                         for n in range(start, min(start + 2000, args.records))]
                ids.extend(r.id for r in org.records.create(admin, "Account", batch))
            print(f"loaded {len(ids)} accounts in {time.perf_counter() - started:.1f}s", file=sys.stderr)
            contexts = {"admin (no condition)": org.admin_context(),
                        "rep, OWD only": org.context_for(reps[0])}
            results: dict[str, dict[str, float]] = {}
            for label, context in contexts.items():
                results[label] = {name: median_ms(org, q, context, args.runs) for name, q in QUERIES.items()}
            # 1,000 manual shares, a criteria rule and an owner rule.
            shares = [{"AccountId": ids[n], "UserOrGroupId": reps[(n + 1) % len(reps)] if n % 2 else member,
                       "AccountAccessLevel": "Read"} for n in random.sample(range(len(ids)), 1000)]
            for start in range(0, len(shares), 200):
                org.records.create(admin, "AccountShare", shares[start:start + 200])
            (project / "metadata" / "groups").mkdir(parents=True)
            (project / "metadata" / "groups" / "Bench.yaml").write_text(
                "label: Bench\nmembers:\n  users: [member@bench.test]\n")
            (project / "metadata" / "groups" / "RepOne.yaml").write_text(
                "label: Rep One\nmembers:\n  users: [rep1@bench.test]\n")
            (project / "metadata" / "sharingRules").mkdir(parents=True)
            (project / "metadata" / "sharingRules" / "Account.yaml").write_text(textwrap.dedent("""\
                rules:
                  - {name: Energy, type: criteria, criteria: "Industry = 'Energy' AND AnnualRevenue > 900000",
                     sharedWith: {group: Bench}, access: Read}
                  - {name: EnergyReps, type: criteria, criteria: "Industry = 'Energy' AND AnnualRevenue > 900000",
                     sharedWith: {roleAndSubordinates: Manager}, access: Read}
                  - {name: RepOne, type: owner, ownedBy: {group: RepOne}, sharedWith: {role: Rep}, access: Edit}
                """))
            apply_sharing_metadata(org, project)
            org.query.clear_cache()
            for label, user in (("rep, rules + 1,000 shares", reps[0]), ("group member, rules + shares", member)):
                context = org.context_for(user)
                results[label] = {name: median_ms(org, q, context, args.runs) for name, q in QUERIES.items()}
    baseline = results["admin (no condition)"]
    print(f"{'who':32} " + " ".join(f"{name:>18}" for name in QUERIES))
    for label, row in results.items():
        print(f"{label:32} " + " ".join(f"{row[n]:8.2f}ms ({row[n] / baseline[n]:4.2f}x)" for n in QUERIES))


if __name__ == "__main__":
    main()
