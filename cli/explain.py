"""`regua explain`: why a decision came out as it did and, with --counterfactual, the smallest
changes to what the customer can change (the policy's `actionable` block) that would turn it into
an approval. Either a policy evaluated on an input file, or a stored decision of the server's store.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

import click

from .common import compile_cache_dir, fail_json, print_diagnostics, read_json, registry


def _options(func):
    for option in reversed([
        click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False, allow_dash=True),
                     help="JSON input: explain POLICY_FILE evaluated on it (instead of a stored decision)."),
        click.option("--fixtures", type=click.Path(exists=True, dir_okay=False),
                     help="JSON object of connector answers, as for `regua eval` (default: the sandbox bureau)."),
        click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="Evaluation date (default: today)."),
        click.option("--db", default="var/regua.db", show_default=True,
                     help="SQLite file of the server's store, for a DECISION_ID."),
        click.option("--counterfactual", is_flag=True,
                     help="Also search the smallest changes of the actionable facts that reach --target."),
        click.option("--target", type=click.Choice(["approve", "review"]), default="approve", show_default=True),
        click.option("--alternatives", "-k", type=click.IntRange(1, 10), default=3, show_default=True,
                     help="At most this many alternatives."),
        click.option("--max-changes", type=click.IntRange(1, 3), default=2, show_default=True,
                     help="Facts changed together at most, in one alternative."),
    ]):
        func = option(func)
    return func


@click.command("explain")
@click.argument("what", metavar="POLICY_FILE|DECISION_ID")
@_options
def explain_command(what: str, input_file, fixtures, as_of, db, counterfactual: bool, target: str,
                    alternatives: int, max_changes: int) -> None:
    """Explain a decision: outcome, ranked reasons, the customer's explanation (pt-BR) and, with
    --counterfactual, what would have changed it. Prints JSON.

    Exit status: 0 explained, 1 the policy does not compile, 2 bad input or unknown decision."""
    options = {"target": target, "alternatives": alternatives, "max_changes": max_changes}
    if input_file:
        out = _from_input(what, input_file, fixtures, as_of, counterfactual, options)
    else:
        out = _from_store(what, db, counterfactual, options)
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))


def _from_input(policy_file, input_file, fixtures, as_of, counterfactual, options) -> dict:
    from pathlib import Path

    from regua.dsl.diagnostics import PolicyError
    from regua.engine.compiler import compile_file
    from regua.engine.counterfactuals import counterfactuals_for
    from regua.engine.prepared import InvalidInput
    from regua.server.explanation import counterfactual_sentence

    from .policy import _connectors_from

    if not Path(policy_file).is_file():
        raise click.UsageError(f"{policy_file}: no such policy file (with --input, the argument is a policy)")
    plugins = registry(sandbox_aliases=True)  # aliases change the connectors, not the environment
    try:
        prepared = compile_file(policy_file, env=plugins.environment(), cache_dir=compile_cache_dir())
    except PolicyError as error:
        print_diagnostics(error)
        sys.exit(1)
    data = read_json(input_file)
    day = as_of.date() if as_of else dt.date.today()
    connectors = _connectors_from(fixtures, plugins)
    try:
        if counterfactual:
            decision, found = counterfactuals_for(prepared, data, connectors=connectors, as_of=day, **options)
        else:
            decision = prepared.evaluate(data, connectors=connectors, as_of=day)
    except InvalidInput as error:
        fail_json("INVALID_INPUT", "the input does not fit the policy", error.to_list())
    out = {"policy": {"name": prepared.name, "version": prepared.version}, "outcome": decision.outcome,
           "reasons": [r.to_dict() for r in decision.reasons]}
    if counterfactual:
        out["counterfactuals"] = found.to_dict()
        out["sentence"] = counterfactual_sentence(out["counterfactuals"])
    return out


def _from_store(decision_id, db, counterfactual, options) -> dict:
    from pathlib import Path

    import msgspec

    from regua.lab.common import compile_source
    from regua.server.counterfactuals import NotExplainable, counterfactuals_of, decision_policy
    from regua.server.explanation import explain
    from regua.server.ids import id_time
    from regua.server.store import Store

    if not Path(db).exists():
        raise click.UsageError(f"{db}: no such database (give the store with --db, or a policy file with --input)")
    store = Store(db)
    try:
        row = store.decision(decision_id)
        if row is None:
            fail_json("UNKNOWN_DECISION", f"no decision with id '{decision_id}' in {db}")
        body = msgspec.json.decode(row["body"])
        out = {"decision_id": row["id"], "policy": {"name": row["policy"], "version": row["version"],
                                                      "revision": row["revision"]},
               "outcome": row["outcome"], "reasons": body["reasons"]}
        found = None
        if counterfactual:
            try:
                prepared = decision_policy(row, store, compile_source)
                found = counterfactuals_of(row, prepared, **options).to_dict()
            except NotExplainable as error:
                fail_json(error.code, error.message)
            out["counterfactuals"] = found
        created_at = id_time(row["id"]).isoformat(timespec="milliseconds")
        out["explanation"] = explain(row["outcome"], body["reasons"], row["policy"], row["version"], created_at,
                                     found)
        return out
    finally:
        store.close()
