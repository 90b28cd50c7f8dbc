"""The `deepnuclei` Snakemake logger: `snakemake --logger deepnuclei` prints `deepnuclei.progress`'s line
instead of a block per job, and every other message as Snakemake's own console does."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from logging import LogRecord

from snakemake.logging import ColorizingTextHandler, DefaultFilter, DefaultFormatter
from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

from deepnuclei.progress import RunProgress

# what the progress line stands for: Snakemake's per-job blocks and its "n of m steps" lines
PROGRESS_EVENTS = {LogEvent.JOB_INFO, LogEvent.JOB_STARTED, LogEvent.JOB_FINISHED, LogEvent.PROGRESS,
                   LogEvent.SHELLCMD, LogEvent.RESOURCES_INFO}
SCHEDULER_CHATTER = {"Select jobs to execute..."}  # once per scheduling round, told by nothing else
TRAINING_REFRESH_S = 30.0


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    pass


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        settings = self.common_settings
        self.console = ColorizingTextHandler(nocolor=settings.nocolor,
                                             stream=sys.stdout if settings.stdout else sys.stderr)
        self.console.addFilter(DefaultFilter(settings.quiet, settings.debug_dag, settings.verbose, settings.dryrun,
                                             settings.printshellcmds))
        self.console.setFormatter(DefaultFormatter(settings.quiet, settings.show_failed_logs))
        self.progress = RunProgress()
        self.last_line = ""
        self.stopped = threading.Event()
        # a training job runs for minutes without a Snakemake event: its epochs are shown all the same
        threading.Thread(target=self.refresh, daemon=True).start()

    def emit(self, record: LogRecord) -> None:
        event = getattr(record, "event", None)
        if self.common_settings.dryrun or event not in PROGRESS_EVENTS:
            if record.getMessage() in SCHEDULER_CHATTER and not self.common_settings.verbose:
                return
            if event == LogEvent.RUN_INFO:
                self.progress.planned(record.stats)
            self.console.handle(record)
            return
        if event == LogEvent.JOB_INFO:
            self.progress.job_started(record.jobid, record.rule_name, list(record.output or []))
        elif event == LogEvent.JOB_FINISHED:
            self.progress.job_finished(record.job_id)
            self.show()

    def show(self) -> None:
        line = self.progress.line()
        if line.split("]", 1)[-1] != self.last_line.split("]", 1)[-1]:  # the same but for the clock: once
            self.last_line = line
            print(line, file=sys.stderr, flush=True)

    def refresh(self) -> None:
        while not self.stopped.wait(TRAINING_REFRESH_S):
            if self.progress.trainings():
                self.show()

    def close(self) -> None:
        self.stopped.set()
        self.console.close()
        super().close()

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
