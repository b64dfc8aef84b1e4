"""The policy lab: know what a policy change does before it goes live (issue 16).

- `regua.lab.replay`: re-evaluate the decision log's decisions with a candidate policy, on the
  stored input and the stored connector answers (engine.recorded), and report what changes;
- `regua.lab.backtest`: evaluate a policy (and another, for swap sets) on a dataset of
  applications, with a default label for bad rates and expected loss; `regua.lab.dataset` reads
  the datasets (CSV, pt-BR spreadsheets' CSV, JSON Lines, Parquet) in bounded batches;
- `regua.lab.parallel`: both spread over worker processes, each compiling the policy once from
  its source and returning a partial report that merges into the whole;
- `regua.lab.distributed`: the same on a Dask cluster (the `lab` extra);
- `regua.lab.html`: the self-contained HTML reports (`--html`).

The lab reads no store itself: the command line hands it records (server.replay_source).
"""
