"""Map/reduce: `inc` and `double` mapped over a range, `add` mapped over both, `sum_all` reduces.

    flows-tui run map_reduce -p n=100
"""

from flows_tui import flow, get_run_logger, task


@task
def inc(x: int) -> int:
    return x + 1


@task
def double(x: int) -> int:
    return 2 * x


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def sum_all(values: list[int]) -> int:
    total = sum(values)
    get_run_logger().info("sum of %d values: %d", len(values), total)
    return total


@flow(name="map_reduce")
def map_reduce(n: int = 10) -> int:
    incremented = inc.map(range(n))
    doubled = double.map(range(n))
    added = add.map(incremented, doubled)
    return sum_all(added)


if __name__ == "__main__":
    print(map_reduce(n=10))
