"""The DuckDB schema, as append-only migrations. Never edit one that has shipped: add the next.

Each migration runs in one transaction together with the row that records it, so a store is always
at a known version. Column meanings are documented in the README ("DuckDB schema").
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial", """
CREATE TABLE runs (
    run_id          VARCHAR PRIMARY KEY,
    suite_name      VARCHAR NOT NULL,
    suite_version   VARCHAR,
    suite_path      VARCHAR,
    suite_hash      VARCHAR NOT NULL,
    suite_text      VARCHAR,
    dataset_path    VARCHAR,
    dataset_hash    VARCHAR,
    n_samples       INTEGER,
    repeats         INTEGER,
    status          VARCHAR NOT NULL,      -- running | complete | interrupted | failed
    created_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP,
    git_commit      VARCHAR,
    git_dirty       BOOLEAN,
    evalkit_version VARCHAR,
    packages        JSON,                  -- {package: version} of the libraries that shape results
    config          JSON,                  -- the validated suite, secrets redacted
    argv            JSON,
    host            JSON
);
CREATE TABLE run_models (
    run_id      VARCHAR NOT NULL,
    model       VARCHAR NOT NULL,          -- the suite's name for the model
    provider    VARCHAR NOT NULL,
    model_ref   VARCHAR,                   -- what was called: LiteLLM string or served model name
    identity    JSON,                      -- what the cache key is built from
    config      JSON,                      -- the suite's model entry, secrets redacted
    adapter     JSON,                      -- LoRA adapter identity (path, sha256, rank, base)
    status      VARCHAR NOT NULL,          -- running | complete | aborted | interrupted
    started_at  TIMESTAMP,
    finished_at TIMESTAMP,
    wall_s      DOUBLE,                    -- seconds spent calling this model (summed over resumes)
    n_calls     INTEGER,                   -- model calls made (cache hits excluded)
    error       VARCHAR,
    PRIMARY KEY (run_id, model)
);
CREATE TABLE samples (
    run_id    VARCHAR NOT NULL,
    sample_id VARCHAR NOT NULL,
    position  INTEGER NOT NULL,            -- row position in the dataset file
    slice     VARCHAR,
    fields    JSON,
    messages  JSON,                        -- the rendered chat messages
    target    JSON,
    PRIMARY KEY (run_id, sample_id)
);
CREATE TABLE results (
    run_id            VARCHAR NOT NULL,
    model             VARCHAR NOT NULL,
    sample_id         VARCHAR NOT NULL,
    repeat            INTEGER NOT NULL,
    status            VARCHAR NOT NULL,    -- ok | error
    output            VARCHAR,             -- raw model text
    parsed            JSON,
    parse_error       VARCHAR,
    schema_valid      BOOLEAN,
    schema_errors     JSON,
    feasible          BOOLEAN,
    violations        JSON,
    quality           DOUBLE NOT NULL,
    correct           BOOLEAN NOT NULL,
    confidence        DOUBLE,
    score_error       VARCHAR,
    latency_ms        DOUBLE,
    ttft_ms           DOUBLE,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    cost_usd          DOUBLE,
    finish_reason     VARCHAR,
    resolved_model    VARCHAR,
    request_params    JSON,                -- exactly what was sent besides the messages
    logprobs          JSON,
    error             VARCHAR,
    error_kind        VARCHAR,
    attempts          INTEGER NOT NULL,
    cache_hit         BOOLEAN NOT NULL,
    cache_key         VARCHAR NOT NULL,
    created_at        TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, model, sample_id, repeat)
);
CREATE INDEX results_cache_key ON results (cache_key);
CREATE TABLE metrics (
    run_id  VARCHAR NOT NULL,
    model   VARCHAR NOT NULL,
    metric  VARCHAR NOT NULL,
    value   DOUBLE,
    ci_low  DOUBLE,
    ci_high DOUBLE,
    n       INTEGER,
    PRIMARY KEY (run_id, model, metric)
);
"""),
    (2, "routing", """
CREATE TABLE routing_policies (
    run_id          VARCHAR NOT NULL,
    small           VARCHAR NOT NULL,          -- the model that answers unless escalated
    large           VARCHAR NOT NULL,          -- the model escalations go to
    signal          VARCHAR NOT NULL,          -- whose confidence routes: the small model or a router model
    style           VARCHAR NOT NULL,          -- cascade | router
    threshold       DOUBLE NOT NULL,           -- escalate when signal < threshold (-inf: never, inf: always)
    share_escalated DOUBLE NOT NULL,
    accuracy        DOUBLE NOT NULL,
    feasible_rate   DOUBLE,
    tail5           DOUBLE,
    brier           DOUBLE,
    cost_per_1k     DOUBLE,
    latency_ms_p50  DOUBLE,
    latency_ms_p95  DOUBLE,
    monthly_cost_usd DOUBLE,                   -- at volume_per_day requests
    volume_per_day  DOUBLE,
    pareto          BOOLEAN NOT NULL,
    created_at      TIMESTAMP NOT NULL
);
CREATE TABLE routing_recommendations (
    run_id      VARCHAR NOT NULL,
    small       VARCHAR NOT NULL,
    large       VARCHAR NOT NULL,
    signal      VARCHAR NOT NULL,
    style       VARCHAR NOT NULL,
    max_drop    DOUBLE NOT NULL,               -- target: accuracy within max_drop of the large model
    fold        VARCHAR NOT NULL,              -- which half chose the threshold, which half judged it
    detail      JSON NOT NULL,                 -- threshold, fit/test accuracy, CI, share escalated, cost
    created_at  TIMESTAMP NOT NULL
);
"""),
]
