"""`LotQueue`, an org's lots as arrays, against a list of [expires, rest] pairs spent from the
front: appends of many lots, leap-day inserts, takes that empty hundreds of lots at once (past
the first look-ahead of 16) or stop inside one, the lots expiring by an instant listed."""

from __future__ import annotations

import random

import numpy as np

from rating_core._lots import NEVER, LotQueue


def test_lot_queue_matches_a_list_of_lots():
    for seed in range(20):
        rng = random.Random(seed)
        queue, model = LotQueue(), []
        now = 0
        for _ in range(300):
            step = rng.randrange(5)
            if step == 0:  # a window's purchases
                expires = np.sort(np.array([now + rng.randrange(1, 50) for _ in range(rng.randrange(1, 300))]))
                expires = np.maximum(expires, model[-1][0] if model else 0)
                amount = rng.randrange(1, 10)
                queue.append(expires, amount)
                model += [[int(e), amount] for e in expires]
            elif step == 1 and model:  # a lot that expires before the last one held
                e, amount = rng.randrange(now, model[-1][0] + 1), rng.randrange(1, 10)
                queue.insert(e, amount)
                at = next((i for i, lot in enumerate(model) if lot[0] > e), len(model))
                model.insert(at, [e, amount])
            elif step == 2:  # spending
                total = sum(rest for _, rest in model)
                amount = rng.choice([0, min(1, total), total, rng.randrange(total + 1)])
                queue.take(amount)
                while amount:
                    taken = min(amount, model[0][1])
                    model[0][1] -= taken
                    amount -= taken
                    if model[0][1] == 0:
                        model.pop(0)
            else:  # time passes: the lots expiring by now listed, their rests removed from the front
                now += rng.randrange(10)
                gone = [(e, rest) for e, rest in model if e <= now]
                model = [lot for lot in model if lot[0] > now]
                expires, held = queue.expiring_before(now + 1)
                assert expires.tolist() == [e for e, _ in gone]
                assert held.tolist() == np.cumsum([rest for _, rest in gone]).tolist()
                queue.take(int(held[-1]) if len(held) else 0)
            assert queue.held() == [(e, r) for e, r in model if r > 0]
            assert queue.first_expiry() == (model[0][0] if model else NEVER)

