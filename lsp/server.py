"""`regua lsp`: the language server, over stdio (pygls).

Every open policy is analysed (lsp/analysis.py: parsed and checked as `regua check` does) when it
is opened or saved, and after a change: at once when it is the first change for a while, else a
short while after the last one (debounced: typing a word analyses once or twice, not per key).
Analyses run one at a time in a worker thread, so the server keeps answering; each is of one
version of the text and stops as soon as a newer version arrives (cancelled between items and
passes, so the worker is free for the newer one at once), and a result for a text that changed
meanwhile is dropped. Only the items an edit touched are parsed again (lsp/incremental.py) and only
the rules it affects are checked again (lsp/checking.py). Whatever the text, the server answers: a
checker failure becomes one diagnostic, never a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote, urlparse

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from regua import __version__
from regua.dsl.diagnostics import PolicyError
from regua.dsl.formatter import format_source

from . import features
from .analysis import Analysis, analyse
from .checking import CheckMemo
from .incremental import Cancelled, ItemCache
from .positions import Positions

log = logging.getLogger("regua.lsp")

#: Seconds of quiet after a change before the text is analysed, when changes come faster than this;
#: a change after a quiet while is analysed at once.
DEBOUNCE = 0.05


class _Document:
    """What the server keeps between analyses of one open document."""

    def __init__(self):
        self.items = ItemCache()  # its parsed items
        self.checks = CheckMemo()  # what checking each rule gave
        self.changes = 0  # changes received: an analysis of an older count is stale
        self.last_change = 0.0  # time.monotonic() of the last change


def _path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


class ReguaLanguageServer(LanguageServer):
    def __init__(self, env=None, debounce: float = DEBOUNCE):
        super().__init__("regua", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self._env = env
        self.debounce = debounce
        self.analyses: dict[str, tuple[str, Analysis]] = {}  # uri -> (text analysed, analysis)
        self.parsed: dict[str, Analysis] = {}  # uri -> the latest analysis of a text that parsed
        self.pending: dict[str, asyncio.Task] = {}
        self.documents: dict[str, _Document] = {}
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="regua-analysis")

    @property
    def env(self):
        if self._env is None:  # the installed plugins' bureaus and functions, as `regua check` sees them
            from regua.plugins.manager import PluginSettings
            from regua.plugins.registry import Registry

            self._env = Registry.load(PluginSettings.from_env()).environment()
        return self._env

    # ---- analysis ----
    def document(self, uri: str) -> _Document:
        return self.documents.setdefault(uri, _Document())

    def _analyse(self, uri: str, text: str, cancelled=None) -> Analysis | None:
        """The analysis of `text`; None when `cancelled()` turned true meanwhile (a newer text)."""
        started = time.perf_counter()
        document = self.document(uri)
        try:
            analysis = analyse(text, _path(uri), self.env, document.items, document.checks, cancelled)
        except Cancelled:
            log.debug("analysis of %s cancelled after %.1f ms", uri, (time.perf_counter() - started) * 1000)
            return None
        except Exception as error:  # any failure of the checker is said in the editor, never a crash
            log.exception("analysis of %s failed", uri)
            analysis = Analysis(text, _path(uri), [], internal_error=f"{type(error).__name__}: {error}")
        log.debug("analysed %s in %.1f ms", uri, (time.perf_counter() - started) * 1000)
        return analysis

    async def analysis(self, uri: str) -> Analysis:
        """The analysis of the document's current text (made now if the last one is stale)."""
        text = self.workspace.get_text_document(uri).source
        stored = self.analyses.get(uri)
        if stored is not None and stored[0] == text:
            return stored[1]
        analysis = await asyncio.get_running_loop().run_in_executor(self.worker, self._analyse, uri, text)
        self._store(uri, text, analysis)
        return analysis

    def _store(self, uri: str, text: str, analysis: Analysis) -> None:
        self.analyses[uri] = (text, analysis)
        if analysis.parsed:
            self.parsed[uri] = analysis

    async def publish(self, uri: str, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        document = self.workspace.get_text_document(uri)
        version, text = document.version, document.source
        state = self.document(uri)
        changes = state.changes

        def stale() -> bool:  # read by the worker between items and passes
            return state.changes != changes

        stored = self.analyses.get(uri)
        if stored is None or stored[0] != text:
            analysis = await asyncio.get_running_loop().run_in_executor(self.worker, self._analyse, uri, text, stale)
            if analysis is None or self.workspace.get_text_document(uri).source != text:
                return  # changed while it was analysed: the newer change publishes
            self._store(uri, text, analysis)
        else:
            analysis = stored[1]
        internal = analysis.internal_error
        try:
            positions = Positions(analysis.text)
            diagnostics = [features.diagnostic(d, positions) for d in analysis.diagnostics]
        except Exception as error:  # a text the editor cannot be told about is still said, never a crash
            log.exception("diagnostics of %s failed", uri)
            diagnostics, internal = [], f"{type(error).__name__}: {error}"
        if internal:
            diagnostics.append(lsp.Diagnostic(lsp.Range(lsp.Position(0, 0), lsp.Position(0, 1)),
                                              f"the checker failed on this text ({internal}); please report it",
                                              lsp.DiagnosticSeverity.Error, code="internal", source=features.SOURCE))
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, diagnostics, version))
        # Then, off the editor's thread and before any later analysis, the index hover and
        # definition read (the diagnostics did not wait for it); not for a text already replaced
        # (a hover makes it when it needs it).
        asyncio.get_running_loop().run_in_executor(self.worker, lambda: None if stale() else analysis.index())

    def schedule(self, uri: str, delay: float) -> None:
        previous = self.pending.pop(uri, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.get_running_loop().create_task(self.publish(uri, delay))
        self.pending[uri] = task
        task.add_done_callback(lambda done: self.pending.pop(uri, None) if self.pending.get(uri) is done else None)

    def for_completion(self, uri: str, analysis: Analysis) -> Analysis:
        return analysis if analysis.parsed else self.parsed.get(uri, analysis)


server = ReguaLanguageServer()


def _location(uri: str, analysis: Analysis, span) -> lsp.Location:
    return lsp.Location(uri, Positions(analysis.text).range(span))


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: ReguaLanguageServer, params: lsp.DidOpenTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, 0.0)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: ReguaLanguageServer, params: lsp.DidChangeTextDocumentParams) -> None:
    state = ls.document(params.text_document.uri)
    state.changes += 1  # any analysis of the text before this change stops
    now = time.monotonic()
    quiet = now - state.last_change > ls.debounce
    state.last_change = now
    ls.schedule(params.text_document.uri, 0.0 if quiet else ls.debounce)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: ReguaLanguageServer, params: lsp.DidSaveTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, 0.0)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: ReguaLanguageServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    task = ls.pending.pop(uri, None)
    if task is not None:
        task.cancel()
    ls.analyses.pop(uri, None)
    ls.parsed.pop(uri, None)
    state = ls.documents.pop(uri, None)
    if state is not None:
        state.changes += 1  # an analysis under way stops
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, []))


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
async def hover(ls: ReguaLanguageServer, params: lsp.HoverParams) -> lsp.Hover | None:
    analysis = await ls.analysis(params.text_document.uri)
    line, column = Positions(analysis.text).from_lsp(params.position)
    text = features.hover(analysis, line, column)
    return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text)) if text else None


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
async def definition(ls: ReguaLanguageServer, params: lsp.DefinitionParams) -> lsp.Location | None:
    analysis = await ls.analysis(params.text_document.uri)
    found = features.definition(analysis, *Positions(analysis.text).from_lsp(params.position))
    return _location(params.text_document.uri, analysis, found.span) if found else None


@server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
async def references(ls: ReguaLanguageServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
    analysis = await ls.analysis(params.text_document.uri)
    found = features.references(analysis, *Positions(analysis.text).from_lsp(params.position),
                                params.context.include_declaration)
    return [_location(params.text_document.uri, analysis, o.span) for o in found]


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["."]))
async def completion(ls: ReguaLanguageServer, params: lsp.CompletionParams) -> lsp.CompletionList:
    uri = params.text_document.uri
    document = ls.workspace.get_text_document(uri)
    lines = document.source.split("\n")
    line, column = Positions(document.source).from_lsp(params.position)
    before = lines[line - 1][: column - 1] if line <= len(lines) else ""
    analysis = ls.for_completion(uri, await ls.analysis(uri))
    return lsp.CompletionList(is_incomplete=False, items=features.completion(analysis, before, line))


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
async def document_symbols(ls: ReguaLanguageServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
    return features.document_symbols(await ls.analysis(params.text_document.uri))


@server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: ReguaLanguageServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit]:
    """`regua fmt` on the whole text; a policy that does not parse is left as it is (its diagnostics say why)."""
    document = ls.workspace.get_text_document(params.text_document.uri)
    try:
        formatted = format_source(document.source, _path(document.uri))
    except PolicyError:
        return []
    if formatted == document.source:
        return []
    lines = document.source.split("\n")
    end = Positions(document.source).to_lsp(len(lines), len(lines[-1]) + 1)
    return [lsp.TextEdit(lsp.Range(lsp.Position(0, 0), end), formatted)]


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
def code_actions(ls: ReguaLanguageServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    document = ls.workspace.get_text_document(params.text_document.uri)
    return features.quick_fixes(document.uri, document.source, params.context.diagnostics)


def serve() -> None:
    logging.basicConfig(level=logging.WARNING, format="regua lsp: %(levelname)s %(message)s")  # stderr, never stdout
    server.start_io()
