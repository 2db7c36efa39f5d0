"""The scheduler daemon behind ``scheduler.py`` (the entry point: command line and logging), one module per job.

- ``newsdaemon.schedules``: cron expressions, time zones, durations; one schedule per topic
- ``newsdaemon.store``: the scheduler's migrations and table ``schedule_runs``; ``crawl_runs`` as it reads it
- ``newsdaemon.judge``: a crawl's outcome from its ``crawl_runs`` row
- ``newsdaemon.runner``: one crawl subprocess per run: time limit, stopping, logging, the --on-failure hook
- ``newsdaemon.service``: the modes: the APScheduler daemon with catch-up, --once, --list, --status
- ``newsdaemon.clock``: UTC times as the records store them

Modules import downwards only (service -> runner -> store -> judge, clock), and never
``scheduler``: run as a script it is ``__main__``, and importing it again would load a
second copy.
"""
