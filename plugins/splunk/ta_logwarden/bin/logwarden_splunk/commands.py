"""The custom search commands as splunklib defines them (SCP v2, ``chunked = true`` in commands.conf)."""

from __future__ import annotations

from typing import Any

from splunklib.searchcommands import Configuration, EventingCommand, Option, StreamingCommand, validators

from logwarden_splunk import credentials, labels, scoring


def _client_factory(command: Any, **client_kwargs: Any):
    """A callable giving the LogWarden client from the settings in storage/passwords, or raising
    ``scoring.Unavailable`` saying why there is none."""

    def make() -> Any:
        info = command.metadata.searchinfo
        try:
            svc = credentials.service(getattr(info, "splunkd_uri", "") or "", getattr(info, "session_key", "") or "")
            settings = credentials.load(svc)
            return credentials.http_client(settings, getattr(info, "dispatch_dir", None), **client_kwargs)
        except credentials.SettingsError as exc:
            raise scoring.Unavailable(f"settings unreadable: {exc}") from None
        except Exception as exc:  # splunklib / ssl / OS trouble reading the credential
            raise scoring.Unavailable(f"settings unreadable: {type(exc).__name__}: {exc}") from None

    return make


@Configuration()
class AnomalyScoreCommand(EventingCommand):
    """**Syntax:** ``| anomalyscore [message_field=_raw] [source_field=host] [session_field=<field>] [model=<route>]
    [mode=sequence|stream] [max_buffer=100000]``

    **Description:** Scores events with LogWarden and adds ``logwarden_*`` fields to every row. Runs on the
    search head; sequence mode holds rows until the input ends so that sessions are scored whole.
    """

    message_field = Option(doc="field holding the log line", default="_raw", validate=validators.Fieldname())
    source_field = Option(doc="field naming the event's source", default="host", validate=validators.Fieldname())
    session_field = Option(
        doc="field holding the session key (default: the model's rule)", validate=validators.Fieldname()
    )
    model = Option(doc="model route on the LogWarden server", default="")
    mode = Option(
        doc="sequence (whole sessions) or stream (real-time)",
        default="sequence",
        validate=validators.Set(*scoring.MODES),
    )
    max_buffer = Option(doc="rows held before a partial flush", default=100_000, validate=validators.Integer(minimum=1))

    def prepare(self) -> None:
        options = scoring.Options(
            message_field=self.message_field,
            source_field=self.source_field,
            session_field=self.session_field or "",
            model=self.model or "",
            mode=self.mode,
            max_buffer=int(self.max_buffer),
        )
        sid = str(getattr(self.metadata.searchinfo, "sid", "") or "")
        client = _client_factory(self, max_batch_events=1000, max_in_flight=scoring.IN_FLIGHT)
        self._scorer = scoring.Scorer(options, sid, client)
        self._names: dict[str, None] = {}  # every field seen in any chunk, in order

    def transform(self, records):
        rows = [dict(r) for r in records]  # plain dicts: half the memory of the framework's OrderedDicts
        if rows:
            self._names.update(dict.fromkeys(rows[0]))  # a chunk's rows share its CSV header
        flush = self._scorer.take(rows, bool(self._finished))
        for message in flush.warnings:
            self.write_warning(message)
        if flush.rows:
            # the reply's CSV header is the first row's fields plus the registered ones: register every field
            # of every chunk held (later chunks may bring fields the first lacked) and the logwarden_* fields
            first = flush.rows[0]
            for name in (*self._names, *scoring.OUTPUT_FIELDS):
                self.add_field(first, name, first.get(name))
        yield from flush.rows


@Configuration(distributed=False)
class AnomalyLabelCommand(StreamingCommand):
    """**Syntax:** ``| anomalylabel value=normal|anomaly [target=event|session] [comment=<text>] [source_field=host]``

    **Description:** Sends every row to LogWarden as an analyst's label (the searching user is the analyst)
    and reports per row whether it was stored (``logwarden_label_status``).
    """

    value = Option(doc="the analyst's verdict", require=True, validate=validators.Set(*labels.VALUES))
    target = Option(
        doc="label the event or its whole session", default="event", validate=validators.Set(*labels.TARGETS)
    )
    comment = Option(doc="free text stored with the label", default="")
    source_field = Option(
        doc="field naming the event's source when the row was not scored",
        default="host",
        validate=validators.Fieldname(),
    )

    def prepare(self) -> None:
        info = self.metadata.searchinfo
        self._labeler = labels.Labeler(
            labels.LabelOptions(
                value=self.value,
                target=self.target,
                comment=self.comment or "",
                source_field=self.source_field,
                analyst=str(getattr(info, "username", "") or getattr(info, "owner", "") or ""),
                origin=str(getattr(info, "sid", "") or ""),
            ),
            _client_factory(self),
        )

    def stream(self, records):
        rows, warnings = self._labeler.label(list(records))
        for message in warnings:
            self.write_warning(message)
        for row in rows:
            yield self.gen_record(**row)
