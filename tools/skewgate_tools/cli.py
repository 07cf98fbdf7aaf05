"""``skewgate``: query the skew a gateway measured, straight from its DynamoDB table.

Commands (each takes ``--json`` to print exactly the read API's document instead of a table):

    skewgate sessions [--day D] [--min-offset-ms N] [--limit N] [--cursor C]
    skewgate skew SESSION_ID [--plot FILE.png|.svg|.html]
    skewgate trace TRACE_ID [--session SESSION_ID]
    skewgate stats [--day D]
    skewgate dashboard [--port 8089]

Connection (all commands): ``--table`` (default ``$TABLE_NAME`` or ``skewgate``),
``--endpoint-url`` (default ``$AWS_ENDPOINT_URL_DYNAMODB``, else the standard AWS endpoint and
credential chain), ``--region``. Against ``make run``'s DynamoDB Local::

    skewgate --endpoint-url http://127.0.0.1:8000 sessions

(a loopback endpoint needs no AWS account: without credentials, dummy ones are used).

Exit codes: 0 ok (an empty result is ok), 1 unknown id or storage error, 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import msgspec

from skewgate.aws.client import MissingAwsConfig, aws_client, is_loopback
from skewgate.aws.store import StorageUnavailable, Store
from skewgate.clock.interval import SKEW_THRESHOLDS, proven_abs_offset_ms
from skewgate_tools.cli_format import count, fmt_interval, fmt_ms, fmt_ns_time, fmt_time

__all__ = ["main", "make_store"]

DEFAULT_TABLE = "skewgate"
DEFAULT_LIMIT = 100  # = skewgate.aws.read.DEFAULT_SESSIONS_LIMIT: --json equals the route
_THETA = "θ = server - browser clock (+: browser behind, -: ahead)"


class CliError(Exception):
    """A message for stderr and an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# --- connection ----------------------------------------------------------------------------


def make_store(
    table: str | None = None, endpoint_url: str | None = None, region: str | None = None
) -> Store:
    """A ``Store`` on the table, through one boto3 client (see ``skewgate.aws.client``)."""
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=10,
                    retries={"mode": "standard", "max_attempts": 3})
    try:
        client = aws_client("dynamodb", endpoint_url=endpoint_url or None, region=region,
                            config=config)
    except MissingAwsConfig as exc:
        raise CliError(str(exc), 2) from None
    return Store(client, table or os.environ.get("TABLE_NAME") or DEFAULT_TABLE)


def _store(args: argparse.Namespace) -> Store:
    return make_store(args.table, args.endpoint_url, args.region)


# --- output --------------------------------------------------------------------------------


def _console() -> Any:
    from rich.console import Console

    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
    return Console(highlight=False, width=width, soft_wrap=False)


def _print_json(document: Any) -> None:
    """Byte for byte the read route's body, plus a newline."""
    from skewgate.aws.read import encode_document

    sys.stdout.write(encode_document(document).decode() + "\n")


# A column: (header, justify, how its text may break). "fixed": never (numbers, times, methods:
# cut neither nor wrap, the layout makes room); "fold": anywhere (ids, kept whole over lines);
# "wrap": at spaces (intervals, flags, names).
Column = tuple[str, str, str]


def _table(columns: list[Column]) -> Any:
    """A borderless table: a header rule and two spaces between columns, so that eight or nine
    columns fit an 80-column terminal (a box costs three characters per column)."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1), pad_edge=False,
                  collapse_padding=True, header_style="bold")
    for name, justify, kind in columns:
        # Even a "fixed" column folds rather than lose characters if the terminal is too narrow.
        table.add_column(name, justify=justify,  # type: ignore[arg-type]
                         no_wrap=kind == "fixed", overflow="fold")
    return table


def _fits(console: Any, table: Any) -> bool:
    """Whether ``table`` prints at its natural width (nothing wrapped) on ``console``."""
    from rich.measure import Measurement

    natural = Measurement.get(console, console.options.update(max_width=10_000), table)
    return bool(natural.maximum <= console.width)


def _first_fitting(console: Any, layouts: list[Callable[[], Any]]) -> tuple[int, Any]:
    """The first layout (widest first) that fits the console, else the last one."""
    for i, layout in enumerate(layouts):
        table = layout()
        if _fits(console, table) or i == len(layouts) - 1:
            return i, table
    raise AssertionError("no layouts")  # pragma: no cover


def _print(console: Any, title: str, table: Any, caption: str | None = None) -> None:
    """Title and caption as paragraphs at the console's width, not squeezed to the table's."""
    console.print(title)
    console.print(table)
    if caption:
        console.print(caption)


def _two_lines(interval: str) -> str:
    """``[-10.73 s, -746 ms]`` over two lines, broken between the bounds, never inside one."""
    return interval.replace(", ", ",\n", 1).replace(" ± ", " ±\n", 1)


def _yes(flag: bool) -> str:
    return "[bold red]yes[/]" if flag else "no"


def _flags(flags: list[str], sep: str) -> str:
    return sep.join("[bold magenta]jump[/]" if f == "jump" else f for f in flags)


# --- commands ------------------------------------------------------------------------------


def cmd_sessions(args: argparse.Namespace) -> int:
    from skewgate.aws.read import sessions_document

    document = sessions_document(
        _store(args), args.day, min_offset_ms=args.min_offset_ms, limit=args.limit,
        cursor=args.cursor,
    )
    if args.json:
        _print_json(document)
        return 0
    doc = document
    console = _console()
    if not doc.sessions:
        where = f" with max proven |θ| >= {fmt_ms(args.min_offset_ms, signed=False)}" \
            if args.min_offset_ms else ""
        console.print(f"no sessions on {doc.day}{where}")
        return 0
    title = f"Sessions on {doc.day} (UTC), most skewed first: {count(len(doc.sessions), 'session')}"

    def wide() -> Any:
        table = _table([
            ("session", "left", "fold"), ("day max proven |θ|", "right", "fixed"),
            ("latest θ", "right", "fixed"), ("interval", "left", "fixed"),
            ("latest proven |θ|", "right", "fixed"), ("method", "left", "fixed"),
            ("corrected", "right", "fixed"), ("jumps", "right", "fixed"),
            ("last batch", "left", "fixed"),
        ])
        for s in doc.sessions:
            table.add_row(
                s.session_id, fmt_ms(s.max_proven_abs_offset_ms, signed=False),
                fmt_ms(s.offset_ms), fmt_interval(s.lower_ms, s.upper_ms),
                fmt_ms(proven_abs_offset_ms(s.lower_ms, s.upper_ms), signed=False), s.method,
                f"{s.corrected_batches}/{s.batches}", str(s.jumps) if s.jumps else "",
                fmt_time(s.last_received_at_ms, with_date=False),
            )
        return table

    def narrow(two_lines: bool) -> Any:
        # The latest proven |θ| is the interval's distance from 0 (printed beside it); the
        # last batch to the second.
        table = _table([
            ("session", "left", "fold"), ("max |θ|", "right", "fixed"),
            ("latest θ", "right", "fixed"), ("interval", "left", "fixed"),
            ("method", "left", "fixed"), ("fixed", "right", "fixed"),
            ("jumps", "right", "fixed"), ("last", "left", "fixed"),
        ])
        for s in doc.sessions:
            interval = fmt_interval(s.lower_ms, s.upper_ms)
            table.add_row(
                s.session_id, fmt_ms(s.max_proven_abs_offset_ms, signed=False),
                fmt_ms(s.offset_ms), _two_lines(interval) if two_lines else interval, s.method,
                f"{s.corrected_batches}/{s.batches}", str(s.jumps) if s.jumps else "",
                fmt_time(s.last_received_at_ms, with_date=False)[:8],
            )
        return table

    choice, table = _first_fitting(console, [wide, lambda: narrow(False), lambda: narrow(True)])
    caption = f"{_THETA}. proven |θ|: distance of the interval from 0."
    if choice:
        caption = (f"{_THETA}. max |θ|: the day's largest proven |θ| (distance of the interval "
                   "from 0); fixed: corrected/all batches; last: last batch (UTC).")
    _print(console, title, table, caption)
    if doc.next_cursor:  # plain print: a wrapped cursor could not be pasted back
        print(f"more: skewgate sessions --day {doc.day} --cursor {doc.next_cursor}", flush=True)
    return 0


def cmd_skew(args: argparse.Namespace) -> int:
    from skewgate.aws.read import skew_document

    store = _store(args)
    document = skew_document(store, args.session_id)
    if document is None:
        raise CliError(f"unknown session {args.session_id!r} in table {store.table!r}")
    if args.plot:
        from skewgate_tools.plot import plot_skew

        try:
            path = plot_skew(msgspec.to_builtins(document), args.plot)
        except ModuleNotFoundError as exc:
            raise CliError(
                f"--plot needs matplotlib ({exc}): pip install 'skewgate[cli]'"
            ) from exc
        print(f"wrote {path}", file=sys.stderr)
    if args.json:
        _print_json(document)
        return 0
    doc = document
    console = _console()
    with_date = len({fmt_time(s.received_at_ms)[:10] for s in doc.samples}) > 1
    title = (f"Skew of session {doc.session_id}: {count(len(doc.samples), 'sample')} "
             "in receipt order")

    def traces(s: Any, sep: str) -> str:
        more = f"{sep}+{s.more_traces} more" if s.more_traces else ""
        return sep.join(s.trace_ids) + more

    def wide() -> Any:
        table = _table([
            ("#", "right", "fixed"), ("received (UTC)", "left", "fixed"), ("θ", "right", "fixed"),
            ("interval", "left", "fixed"), ("±", "right", "fixed"), ("method", "left", "fixed"),
            ("corrected", "left", "fixed"), ("jump", "left", "fixed"),
            ("spans", "right", "fixed"), ("flags", "left", "wrap"), ("traces", "left", "fixed"),
        ])
        for i, s in enumerate(doc.samples, 1):
            half = (
                fmt_ms((s.upper_ms - s.lower_ms) / 2, signed=False)
                if s.lower_ms is not None and s.upper_ms is not None else "inf"
            )
            table.add_row(
                str(i), fmt_time(s.received_at_ms, with_date=with_date), fmt_ms(s.offset_ms),
                fmt_interval(s.lower_ms, s.upper_ms), half, s.method, _yes(s.applied),
                "[bold magenta]jump[/]" if s.jump else "", str(s.span_count),
                _flags(s.flags, ", "), traces(s, "\n"),
            )
        return table

    def narrow(two_lines: bool) -> Any:
        # Flags and trace ids (32 characters each) go below the table, whole.
        table = _table([
            ("#", "right", "fixed"), ("received (UTC)", "left", "fixed"), ("θ", "right", "fixed"),
            ("interval", "left", "fixed"), ("method", "left", "fixed"),
            ("fixed", "left", "fixed"), ("jump", "left", "fixed"), ("spans", "right", "fixed"),
        ])
        for i, s in enumerate(doc.samples, 1):
            when = fmt_time(s.received_at_ms, with_date=with_date)
            if with_date:
                when = when[5:] if not two_lines else f"{when[5:10]}\n{when[11:]}"
            interval = fmt_interval(s.lower_ms, s.upper_ms)
            table.add_row(
                str(i), when, fmt_ms(s.offset_ms),
                _two_lines(interval) if two_lines else interval, s.method, _yes(s.applied),
                "[bold magenta]jump[/]" if s.jump else "", str(s.span_count),
            )
        return table

    choice, table = _first_fitting(console, [wide, lambda: narrow(False), lambda: narrow(True)])
    if choice == 0:
        _print(console, title, table, _THETA)
        return 0
    _print(console, title, table, f"{_THETA}. fixed: the batch's spans were shifted by θ.")
    listing = _table([("#", "right", "fixed"), ("flags", "left", "wrap"),
                      ("traces (skewgate trace ID)", "left", "fixed")])
    for i, s in enumerate(doc.samples, 1):
        listing.add_row(str(i), _flags(s.flags, "\n"), traces(s, "\n"))
    console.print(listing)
    return 0


def _depths(spans: list[Any]) -> dict[str, int]:
    parents = {s.span_id: s.parent_span_id for s in spans}
    depths: dict[str, int] = {}
    for span_id in parents:
        depth, seen, current = 0, {span_id}, parents[span_id]
        while current in parents and current not in seen:
            depth, current = depth + 1, parents[current]
            seen.add(current)
        depths[span_id] = depth
    return depths


def cmd_trace(args: argparse.Namespace) -> int:
    from skewgate.aws.read import trace_document, unknown_trace_message

    store = _store(args)
    document = trace_document(store, args.trace_id, session_id=args.session)
    if document is None:
        message = f"{unknown_trace_message(store, args.trace_id, args.session)} in table " \
                  f"{store.table!r}"
        if args.session is None:  # the CLI cannot tell how the table was written
            message += "; a table written with TRACE_INDEX=false finds it with --session"
        raise CliError(message)
    if args.json:
        _print_json(document)
        return 0
    doc = document
    console = _console()
    days = {
        fmt_ns_time(t, with_date=True)[:10]
        for s in doc.spans
        for t in (s.raw_start_time_unix_nano, s.start_time_unix_nano)
    }
    one_day = len(days) == 1

    def when(ns: str, sep: str = " ") -> str:
        text = fmt_ns_time(ns, with_date=not one_day)
        return text if one_day else f"{text[5:10]}{sep}{text[11:]}"  # mm-dd hh:mm:ss.ffffff

    def shift(s: Any) -> str:
        return fmt_ms(s.shift_ms) if s.applied else "0 (left)"

    sessions = sorted({s.session_id or "(none)" for s in doc.spans})
    services = sorted({s.service or "(unknown)" for s in doc.spans})
    depths = _depths(doc.spans)
    title = (
        f"Trace {doc.trace_id}: {count(len(doc.spans), 'span')}, browser clock (raw) and "
        "corrected, UTC" + (f" on {next(iter(days))}" if one_day else "")
        + f"\nsession {', '.join(sessions)} · service {', '.join(services)}"
    )
    caption = "shift = corrected - raw: θ where the batch was corrected, else 0. " + _THETA

    def name(s: Any) -> str:
        return "  " * depths.get(s.span_id, 0) + s.name

    def wide() -> Any:
        table = _table([
            ("span", "left", "wrap"), ("raw start", "left", "fixed"),
            ("raw end", "left", "fixed"), ("corrected start", "left", "fixed"),
            ("corrected end", "left", "fixed"), ("shift", "right", "fixed"),
            ("θ", "right", "fixed"), ("method", "left", "fixed"),
        ])
        for s in doc.spans:
            table.add_row(
                name(s), when(s.raw_start_time_unix_nano), when(s.raw_end_time_unix_nano),
                when(s.start_time_unix_nano), when(s.end_time_unix_nano), shift(s),
                fmt_ms(s.offset_ms), s.method,
            )
        return table

    def narrow(two_lines: bool) -> Any:
        # End = start + duration; θ and method are one per batch: listed above the table.
        table = _table([
            ("span", "left", "wrap"), ("raw start", "left", "fixed"),
            ("corrected start", "left", "fixed"), ("duration", "right", "fixed"),
            ("shift", "right", "fixed"),
        ])
        sep = "\n" if two_lines else " "
        for s in doc.spans:
            duration = (int(s.end_time_unix_nano) - int(s.start_time_unix_nano)) / 1e6
            table.add_row(
                name(s), when(s.raw_start_time_unix_nano, sep), when(s.start_time_unix_nano, sep),
                fmt_ms(duration, signed=False), shift(s),
            )
        return table

    choice, table = _first_fitting(console, [wide, lambda: narrow(False), lambda: narrow(True)])
    if choice == 0:
        _print(console, title, table, caption)
        return 0
    batches: dict[tuple[int, str | None], Any] = {}
    for s in doc.spans:
        batches.setdefault((s.received_at_ms, s.session_id), s)
    lines = [
        f"batch received {fmt_time(b.received_at_ms)}: θ = {fmt_ms(b.offset_ms)} in "
        f"{fmt_interval(b.lower_ms, b.upper_ms)} ({b.method}), "
        + (f"spans shifted by {fmt_ms(b.shift_ms)}" if b.applied else "spans left alone")
        for b in batches.values()
    ]
    _print(console, title + "\n" + "\n".join(lines), table, caption)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from skewgate.aws.read import Tally, stats_document

    document = stats_document(_store(args), args.day)
    if args.json:
        _print_json(document)
        return 0
    doc = document
    console = _console()
    if doc.sessions.total == 0:
        console.print(f"no sessions on {doc.day}")
        return 0
    names = [name for name, _ in SKEW_THRESHOLDS]

    def cells(tally: Tally) -> list[str]:
        out = [str(tally.total)]
        for name in names:
            share = tally.share[name]
            out.append("-" if share is None else f"{share:.1%} ({tally.over[name]})")
        return out

    for kind in ("sessions", "batches"):
        table = _table(
            [("method", "left", "fixed"), (kind, "right", "fixed")]
            + [(f"> {fmt_ms(bound, signed=False).replace('.00', '')}", "right", "wrap")
               for _, bound in SKEW_THRESHOLDS],
        )
        table.add_row("all", *cells(getattr(doc, kind)), style="bold")
        for method, tallies in doc.by_method.items():
            tally = getattr(tallies, kind)
            if tally.total:
                table.add_row(method, *cells(tally))
        _print(
            console, f"{kind.capitalize()} on {doc.day} (UTC) proven skewed beyond", table,
            "proven: the measured interval lies wholly outside ±threshold (a clock behind"
            " by less than the assumed upload delay cannot be proven; see docs/design.md)."
            if kind == "batches" else
            "a session counts if any of its batches did; by the method of its latest batch.",
        )
    console.print(
        f"corrected batches: {doc.corrected_batches}   jumps: {doc.jumps}"
        + (f"   unclassified batches: {doc.unclassified_batches}"
           if doc.unclassified_batches else "")
    )
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from skewgate_tools.dashboard import serve

    store = _store(args)
    return serve(store, host=args.host, port=args.port)


# --- argument parsing ----------------------------------------------------------------------


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text!r}")
    return value


def _limit(text: str) -> int:
    from skewgate.aws.read import parse_limit

    try:
        limit = parse_limit(text, None)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    assert limit is not None
    return limit


def _day(text: str) -> str:
    from skewgate.aws.read import parse_day

    try:
        return parse_day(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    # Shared options work before or after the command (``skewgate --json skew X`` and
    # ``skewgate skew X --json``); SUPPRESS keeps a subcommand from resetting the main's value.
    def common(suppress: bool) -> argparse.ArgumentParser:
        parent = argparse.ArgumentParser(add_help=False)
        default: Any = argparse.SUPPRESS if suppress else None
        parent.add_argument("--table", default=default,
                            help="DynamoDB table (default $TABLE_NAME or 'skewgate')")
        parent.add_argument("--endpoint-url", default=default,
                            help="DynamoDB endpoint (default $AWS_ENDPOINT_URL_DYNAMODB, "
                                 "else AWS), e.g. http://127.0.0.1:8000 for `make run`")
        parent.add_argument("--region", default=default, help="AWS region")
        parent.add_argument("--json", action="store_true",
                            default=argparse.SUPPRESS if suppress else False,
                            help="print the read API's JSON document instead of a table")
        return parent

    parser = argparse.ArgumentParser(
        prog="skewgate", parents=[common(False)],
        description="Query the browser clock skew skewgate measured (DynamoDB table).",
        epilog="Example: skewgate --endpoint-url http://127.0.0.1:8000 sessions",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = [common(True)]

    sessions = commands.add_parser("sessions", parents=sub,
                                   help="a day's sessions, most skewed first")
    sessions.add_argument("--day", type=_day, default=None, help="UTC day yyyy-mm-dd (today)")
    sessions.add_argument("--min-offset-ms", type=_non_negative, default=None,
                          help="only sessions whose largest proven |θ| that day is at least this")
    sessions.add_argument("--limit", type=_limit, default=DEFAULT_LIMIT,
                          help=f"at most this many (default {DEFAULT_LIMIT})")
    sessions.add_argument("--cursor", default=None, help="continue a previous listing")
    sessions.set_defaults(func=cmd_sessions)

    skew = commands.add_parser("skew", parents=sub, help="one session's samples in time order")
    skew.add_argument("session_id")
    skew.add_argument("--plot", metavar="FILE",
                      help="also draw the timeline to FILE (.png, .svg or .html)")
    skew.set_defaults(func=cmd_skew)

    trace = commands.add_parser("trace", parents=sub,
                                help="raw and corrected times of every span of a trace")
    trace.add_argument("trace_id")
    trace.add_argument("--session", metavar="SESSION_ID",
                       help="also look through this session's batches (needed when the table "
                            "was written with TRACE_INDEX=false)")
    trace.set_defaults(func=cmd_trace)

    stats = commands.add_parser("stats", parents=sub,
                                help="share of batches and sessions skewed beyond 50 ms..1 h")
    stats.add_argument("--day", type=_day, default=None, help="UTC day yyyy-mm-dd (today)")
    stats.set_defaults(func=cmd_stats)

    dashboard = commands.add_parser("dashboard", parents=sub,
                                    help="a local web page of the day's sessions and timelines")
    dashboard.add_argument("--port", type=int, default=8089, help="port (default 8089)")
    dashboard.add_argument("--host", default="127.0.0.1",
                           help="interface (default 127.0.0.1; keep it on loopback)")
    dashboard.set_defaults(func=cmd_dashboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.func
    if args.command == "skew" and args.plot:
        from skewgate_tools.plot import FORMATS

        if os.path.splitext(args.plot)[1].lower() not in FORMATS:
            parser.error(f"--plot: FILE must end in {', '.join(FORMATS)}")
    try:
        return run(args)
    except CliError as exc:
        print(f"skewgate: {exc}", file=sys.stderr)
        return exc.code
    except StorageUnavailable as exc:
        hint = ""
        endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
        if "not found" in str(exc):
            hint = " (--table or $TABLE_NAME)"
        elif is_loopback(endpoint):
            hint = f" (is `make run` / DynamoDB Local running at {endpoint}?)"
        print(f"skewgate: {exc}{hint}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a bad cursor, a plot of nothing
        print(f"skewgate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code:  # an AWS error: access denied, expired token, ...
            print(f"skewgate: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
