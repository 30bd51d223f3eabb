"""Taxi tips: which trip of each hour tipped best?

Trips are generated locally (no download), split into hourly chunks, cleaned
(`clean` fails at random and retries: `retries=5`, `retry_delay_seconds=2`), and
`best` logs the best-tipping trip of every hour. A chunk that fails all six
attempts fails the run, which sends the `[notify.slack]` message of flows.toml.

    flows-tui run taxi_tips
    flows-tui run taxi_tips -p failure_rate=0.5
"""

import random

import numpy as np
import pandas as pd

from flows_tui import flow, get_run_logger, task


@task
def generate_trips(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pickup = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 24 * 3600, rows), unit="s")
    fare = rng.gamma(2.0, 8.0, rows).round(2)
    tip = (fare * rng.beta(2, 8, rows)).round(2)
    tip[rng.random(rows) < 0.02] = -1.0  # a few broken records for `clean` to drop
    return pd.DataFrame({
        "pickup": pickup,
        "passengers": rng.integers(1, 6, rows),
        "distance_km": rng.gamma(2.0, 2.5, rows).round(2),
        "fare": fare,
        "tip": tip,
    }).sort_values("pickup", ignore_index=True)


@task
def split_hourly(trips: pd.DataFrame) -> list[pd.DataFrame]:
    return [chunk for _, chunk in trips.groupby(trips["pickup"].dt.hour)]


@task(retries=5, retry_delay_seconds=2)
def clean(chunk: pd.DataFrame, failure_rate: float) -> pd.DataFrame:
    if random.random() < failure_rate:
        raise ConnectionError("the trip store dropped the connection (simulated)")
    return chunk[(chunk["tip"] >= 0) & (chunk["fare"] > 0)]


@task
def best(chunk: pd.DataFrame) -> dict:
    row = chunk.loc[(chunk["tip"] / chunk["fare"]).idxmax()]
    entry = {"hour": int(row["pickup"].hour), "tip": float(row["tip"]), "fare": float(row["fare"]),
             "tip_share": round(float(row["tip"] / row["fare"]), 3)}
    get_run_logger().info("hour %02d: best tip %.2f on a %.2f fare (%.0f%%)", entry["hour"], entry["tip"],
                          entry["fare"], entry["tip_share"] * 100)
    return entry


@task
def report(bests: list[dict]) -> dict:
    top = max(bests, key=lambda b: b["tip_share"])
    get_run_logger().info("most generous hour: %02d (%.0f%% tip)", top["hour"], top["tip_share"] * 100)
    return top


@flow(name="taxi_tips", log_prints=True)
def taxi_tips(rows: int = 20_000, failure_rate: float = 0.2, seed: int = 7) -> dict:
    trips = generate_trips(rows, seed)
    chunks = split_hourly.submit(trips)
    cleaned = clean.map(chunks, failure_rate)
    bests = best.map(cleaned)
    return report(bests)


if __name__ == "__main__":
    print(taxi_tips())
