"""The scheduler loop: due times, restarts, catch-up, overlap, pause, on a clock the tests move."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from flows_tui.project.schedules import Schedule
from flows_tui.schedule.scheduler import Clock, Scheduler
from flows_tui.record.store import Store

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


class MovableClock(Clock):
    def __init__(self, now: dt.datetime) -> None:
        self.moment = now

    def now(self) -> dt.datetime:
        return self.moment

    def set(self, **kwargs) -> None:
        self.moment = self.moment.replace(**kwargs)

    def advance(self, **kwargs) -> None:
        self.moment += dt.timedelta(**kwargs)


class Launcher:
    """start_run for the scheduler: records what fired; each run stays running until finished."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, dt.datetime]] = []
        self.runs: list[concurrent.futures.Future] = []

    def __call__(self, schedule: Schedule, due: dt.datetime) -> concurrent.futures.Future:
        self.fired.append((schedule.flow, due))
        run: concurrent.futures.Future = concurrent.futures.Future()
        self.runs.append(run)
        return run

    def finish_all(self) -> None:
        for run in self.runs:
            if not run.done():
                run.set_result("Completed")


def at(hour: int, minute: int = 0, second: int = 0, day: int = 23, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    return Store.open(tmp_path)


def make(store, clock, *schedules):
    launcher, messages = Launcher(), []
    scheduler = Scheduler(store, launcher, log=messages.append, clock=clock)
    scheduler.set_schedules(list(schedules))
    return scheduler, launcher, messages


HOURLY = Schedule("hourly", cron="0 * * * *")


def test_a_cron_schedule_fires_at_each_due_time_and_not_before(store):
    clock = MovableClock(at(10, 30))
    scheduler, launcher, _ = make(store, clock, HOURLY)
    assert scheduler.tick() == 1.0 and launcher.fired == []
    clock.set(hour=10, minute=59, second=59, microsecond=500_000)
    assert scheduler.tick() == pytest.approx(0.5)  # the loop wakes exactly at the due time
    clock.set(hour=11, minute=0, second=0, microsecond=0)
    scheduler.tick()
    assert launcher.fired == [("hourly", at(11))]
    assert scheduler.next_due() == {"hourly": at(12)}


def test_an_interval_schedule_runs_when_first_served_then_every_interval(store):
    clock = MovableClock(at(10, 0, 7))
    scheduler, launcher, _ = make(store, clock, Schedule("every5", interval=dt.timedelta(minutes=5)))
    scheduler.tick()
    launcher.finish_all()
    clock.advance(minutes=5)
    scheduler.tick()
    assert [due for _, due in launcher.fired] == [at(10, 0, 7), at(10, 5, 7)]


def test_a_restart_neither_fires_twice_nor_skips_the_next_due_time(store):
    clock = MovableClock(at(11, 0, 0))
    first, launcher, _ = make(store, MovableClock(at(10, 59)), HOURLY)
    first.clock = clock
    first.tick()
    assert launcher.fired == [("hourly", at(11))]
    clock.set(minute=0, second=30)
    second, relaunched, _ = make(store, clock, HOURLY)  # serve restarted 30 s later
    second.tick()
    assert relaunched.fired == []
    clock.set(hour=12, minute=0, second=0)
    second.tick()
    assert relaunched.fired == [("hourly", at(12))]


@pytest.mark.parametrize("catchup, fired", [
    ("skip", []),
    ("once", [at(13)]),
    ("all", [at(11), at(12), at(13)]),
])
def test_runs_missed_while_not_serving_follow_the_catchup_policy(store, catchup, fired):
    schedule = Schedule("hourly", cron="0 * * * *", catchup=catchup)
    store.record_due("hourly", at(10))  # last fired at 10:00, then serve was down
    clock = MovableClock(at(13, 30))
    scheduler, launcher, messages = make(store, clock, schedule)
    for _ in range(4):  # catch-up runs queue behind each other (overlap = skip)
        scheduler.tick()
        launcher.finish_all()
    assert [due for _, due in launcher.fired] == fired
    skipped = 3 - len(fired)
    if skipped:
        assert f"skipped {skipped} run(s) missed while not serving" in messages[0]
    else:
        assert messages == []
    assert scheduler.next_due() == {"hourly": at(14)}


def test_overlap_skip_skips_a_due_time_while_the_previous_run_is_running_and_logs_it(store):
    clock = MovableClock(at(10, 59))
    scheduler, launcher, messages = make(store, clock, HOURLY)
    clock.set(hour=11, minute=0)
    scheduler.tick()
    clock.set(hour=12)
    scheduler.tick()  # the 11:00 run is still going
    assert launcher.fired == [("hourly", at(11))]
    assert "skipped the run due 2026-11-23T12:00:00+00:00: the previous run is still running" in messages[0]


def test_overlap_queue_starts_the_next_run_when_the_previous_one_ends(store):
    clock = MovableClock(at(10, 59))
    scheduler, launcher, _ = make(store, clock, Schedule("hourly", cron="0 * * * *", overlap="queue"))
    clock.set(hour=11, minute=0)
    scheduler.tick()
    clock.set(hour=12)
    scheduler.tick()
    assert len(launcher.fired) == 1
    launcher.finish_all()
    scheduler.tick()
    assert launcher.fired == [("hourly", at(11)), ("hourly", at(12))]


def test_overlap_allow_starts_runs_side_by_side(store):
    clock = MovableClock(at(10, 59))
    scheduler, launcher, _ = make(store, clock, Schedule("hourly", cron="0 * * * *", overlap="allow"))
    for hour in (11, 12):
        clock.set(hour=hour, minute=0)
        scheduler.tick()
    assert [due for _, due in launcher.fired] == [at(11), at(12)]
    assert len(scheduler.running()) == 2


def test_a_paused_schedule_does_not_fire_stays_paused_after_a_restart_and_resumes_without_replaying(store):
    clock = MovableClock(at(10, 30))
    scheduler, launcher, _ = make(store, clock, HOURLY)
    scheduler.pause("hourly")
    clock.set(hour=12, minute=30)
    scheduler.tick()
    assert launcher.fired == [] and scheduler.next_due() == {"hourly": None}
    restarted, _, _ = make(store, clock, HOURLY)
    assert restarted.next_due() == {"hourly": None}
    scheduler.pause("hourly", False)
    scheduler.tick()
    assert launcher.fired == [] and scheduler.next_due() == {"hourly": at(13)}


def test_what_fell_due_while_paused_is_not_replayed_by_a_restart_after_the_resume(store):
    replaying = Schedule("hourly", cron="0 * * * *", catchup="all")
    clock = MovableClock(at(10, 59))
    scheduler, launcher, _ = make(store, clock, replaying)
    clock.set(hour=11, minute=0)
    scheduler.tick()
    scheduler.pause("hourly")
    clock.set(hour=13, minute=30)
    scheduler.pause("hourly", False)  # 12:00 and 13:00 fell due while paused
    scheduler.stop()

    clock.set(hour=13, minute=45)
    again, launcher, messages = make(store, clock, replaying)
    again.tick()
    assert launcher.fired == [] and messages == [] and again.next_due() == {"hourly": at(14)}


def test_trigger_runs_now_and_leaves_the_schedule_alone(store):
    clock = MovableClock(at(10, 30))
    scheduler, launcher, _ = make(store, clock, HOURLY)
    scheduler.trigger("hourly")
    assert launcher.fired == [("hourly", at(10, 30))]
    assert scheduler.next_due() == {"hourly": at(11)}


def test_a_run_that_cannot_start_is_logged_and_the_other_schedules_go_on(store):
    clock = MovableClock(at(10, 59))
    fired: list[str] = []

    def start(schedule, due):
        if schedule.flow == "broken":
            raise ValueError("parameter 'n': not an integer")
        fired.append(schedule.flow)
        return None

    messages: list[str] = []
    scheduler = Scheduler(store, start, log=messages.append, clock=clock)
    scheduler.set_schedules([Schedule("broken", cron="0 * * * *"), HOURLY])
    clock.set(hour=11, minute=0)
    scheduler.tick()
    assert fired == ["hourly"]
    assert messages == ["broken: could not start the run due 2026-11-23T11:00:00+00:00: parameter 'n': not an integer"]


def test_the_loop_thread_fires_within_a_second_of_the_due_time(store):
    fired = concurrent.futures.Future()
    start = dt.datetime.now(UTC)
    scheduler = Scheduler(store, lambda schedule, due: fired.set_result(dt.datetime.now(UTC)))
    scheduler.set_schedules([Schedule("soon", interval=dt.timedelta(seconds=1))])
    scheduler.start()
    try:
        when = fired.result(timeout=5)
    finally:
        scheduler.stop()
    assert (when - start).total_seconds() < 1.0


# Daylight saving time, computed without waiting --------------------------------------------------

def due_times(schedule: Schedule, start: dt.datetime, count: int) -> list[str]:
    times, moment = [], start
    for _ in range(count):
        moment = schedule.next_after(moment)
        times.append(moment.astimezone(BERLIN).isoformat())
    return times


def test_a_daily_berlin_job_in_the_skipped_spring_hour_fires_once_right_after_the_gap():
    schedule = Schedule("daily", cron="30 2 * * *", timezone="Europe/Berlin")
    assert due_times(schedule, dt.datetime(2026, 3, 27, 12, tzinfo=UTC), 3) == [
        "2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_an_hourly_berlin_job_fires_every_real_hour_across_the_october_change():
    schedule = Schedule("hourly", cron="0 * * * *", timezone="Europe/Berlin")
    assert due_times(schedule, dt.datetime(2026, 10, 24, 23, 30, tzinfo=UTC), 4) == [
        "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00",
        "2026-10-25T04:00:00+01:00"]


def test_a_daily_berlin_job_in_the_repeated_autumn_hour_fires_once():
    schedule = Schedule("daily", cron="30 2 * * *", timezone="Europe/Berlin")
    assert due_times(schedule, dt.datetime(2026, 10, 24, 12, tzinfo=UTC), 2) == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_an_interval_keeps_real_elapsed_time_across_a_dst_change():
    schedule = Schedule("every6h", interval=dt.timedelta(hours=6), timezone="Europe/Berlin")
    assert due_times(schedule, dt.datetime(2026, 3, 28, 23, tzinfo=UTC), 2) == [
        "2026-03-29T07:00:00+02:00", "2026-03-29T13:00:00+02:00"]


def test_two_processes_on_one_state_dir_fire_each_due_time_once_and_the_standby_takes_over(tmp_path):
    from flows_tui.schedule.scheduler import ScheduleLock

    # Two schedulers as `serve` and the UI would have them: each its own store connection and
    # lock on one state_dir (flock locks of two open files conflict within a process too).
    clock = MovableClock(at(10, 30))
    first, first_fired, first_said = make(Store.open(tmp_path), clock, HOURLY)
    second, second_fired, second_said = make(Store.open(tmp_path), clock, HOURLY)
    first.lock = ScheduleLock(tmp_path, "flows-tui serve")
    second.lock = ScheduleLock(tmp_path, "the flows-tui UI")

    first.tick()
    second.tick()
    assert first.standing_by is None
    [said] = second_said
    assert said.startswith("the schedules are fired by flows-tui serve (pid ") and "standing by" in said
    assert second.standing_by is not None

    for hour in (11, 12):
        clock.set(hour=hour, minute=0)
        first.tick()
        second.tick()
        first_fired.finish_all()
    assert first_fired.fired == [("hourly", at(11)), ("hourly", at(12))] and second_fired.fired == []
    assert second.next_due() == first.next_due() == {"hourly": at(13)}  # the standby shows the holder's

    # A pause said in the standby (the UI's `s`) holds for the process that fires.
    second.pause("hourly")
    clock.set(hour=13, minute=0)
    first.tick()
    second.tick()
    assert first.next_due() == {"hourly": None} and first_fired.fired[-1] == ("hourly", at(12))
    second.pause("hourly", False)
    first.tick()
    assert first.next_due() == {"hourly": at(14)}  # resumed without replaying 13:00

    # The holder stops (or is killed: the OS drops its lock): the standby fires from the next due time.
    first.stop()
    clock.set(hour=14, minute=0)
    second.tick()
    assert second_said[-1].startswith("firing the schedules now: flows-tui serve (pid ")
    assert second.standing_by is None
    assert second_fired.fired == [("hourly", at(14))] and first_fired.fired[-1] == ("hourly", at(12))
    assert second.lock.holder().startswith("the flows-tui UI (pid ")
    second.stop()


def test_an_interval_shortened_while_served_keeps_its_rhythm_and_fires_nothing_from_before_the_change(store):
    clock = MovableClock(at(8, 0))
    half_hourly = Schedule("etl", interval=dt.timedelta(minutes=30))
    scheduler, launcher, _ = make(store, clock, half_hourly)
    scheduler.tick()
    assert launcher.fired == [("etl", at(8, 0))]
    launcher.finish_all()
    clock.set(minute=38)  # 08:38: the interval becomes 30 s
    scheduler.set_schedules([Schedule("etl", interval=dt.timedelta(seconds=30))])
    assert scheduler.next_due() == {"etl": at(8, 38, 30)}
    scheduler.tick()
    assert launcher.fired == [("etl", at(8, 0))]  # nothing due at 08:37:30, or before, fires
    clock.set(minute=38, second=30)
    scheduler.tick()
    assert launcher.fired[-1] == ("etl", at(8, 38, 30))


@pytest.mark.parametrize("catchup", ["skip", "once", "all"])
def test_a_cron_changed_while_served_fires_at_its_next_time_whatever_the_catchup(store, catchup):
    clock = MovableClock(at(10, 30))
    scheduler, launcher, _ = make(store, clock, Schedule("report", cron="0 * * * *", catchup=catchup))
    clock.set(hour=11, minute=0)
    scheduler.tick()
    clock.set(hour=11, minute=40)
    scheduler.set_schedules([Schedule("report", cron="*/15 * * * *", catchup=catchup)])
    scheduler.tick()
    assert launcher.fired == [("report", at(11))] and scheduler.next_due() == {"report": at(11, 45)}


def test_new_parameters_leave_the_due_time_alone(store):
    clock = MovableClock(at(10, 30))
    scheduler, launcher, _ = make(store, clock, HOURLY)
    scheduler.set_schedules([Schedule("hourly", cron="0 * * * *", parameters={"rows": 5})])
    clock.set(hour=11, minute=0)
    scheduler.tick()
    assert launcher.fired == [("hourly", at(11))]


def test_a_restart_with_a_new_interval_fires_nothing_the_new_interval_would_have_missed(store):
    clock = MovableClock(at(8, 0))
    scheduler, launcher, _ = make(store, clock, Schedule("etl", interval=dt.timedelta(minutes=30)))
    scheduler.tick()
    assert launcher.fired == [("etl", at(8, 0))]
    # Stopped; flows.toml now says every 30 s; served again at 08:38 with catchup = "skip".
    clock.set(minute=38)
    scheduler, launcher, messages = make(store, clock, Schedule("etl", interval=dt.timedelta(seconds=30)))
    assert scheduler.next_due() == {"etl": at(8, 38, 30)}
    scheduler.tick()
    assert launcher.fired == [] and not messages
    clock.set(minute=38, second=30)
    scheduler.tick()
    assert launcher.fired == [("etl", at(8, 38, 30))]
    # The same timing as when it last fired: a restart resumes where it left off.
    clock.set(minute=45)
    scheduler, launcher, _ = make(store, clock, Schedule("etl", interval=dt.timedelta(seconds=30), catchup="once"))
    # Due since 08:39 and missed, caught up once: its next run starts at once (it said 08:39 at 08:45:30).
    assert scheduler.next_due() == {"etl": at(8, 45, 30)}
    scheduler.tick()
    assert launcher.fired == [("etl", at(8, 44))]  # at once: the last missed one (the others overlap it)
