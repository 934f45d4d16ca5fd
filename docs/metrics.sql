-- evalkit metric definitions, as SQL over the `results` table.
-- Every point estimate that `evalkit show` prints equals what these queries return
-- (tests/test_metrics_sql.py runs them against stored runs). Replace $run_id with a run id.
-- `correct` is stored per row: quality >= scoring.correct_threshold, or, when the suite sets scoring.correct,
-- that rule's verdict on a usable answer (false for an unusable answer, and for an infeasible one while
-- scoring.infeasible_is_wrong); the rule is in the run's config (runs.config -> scoring.correct).

-- name: per_model
SELECT
    model,
    count(*)                                                          AS n,
    count(*) FILTER (WHERE status = 'error')                          AS n_errors,
    avg(correct::DOUBLE)                                              AS accuracy,
    avg(correct::DOUBLE) FILTER (WHERE status = 'ok')                 AS accuracy_answered,
    avg(quality)                                                      AS quality_mean,
    CASE WHEN count(schema_valid) > 0
         THEN avg(coalesce(schema_valid, false)::DOUBLE) END          AS schema_valid_rate,
    CASE WHEN count(feasible) > 0
         THEN avg(coalesce(feasible, false)::DOUBLE) END              AS feasible_rate,
    CASE WHEN count(feasible) > 0
         THEN avg(coalesce(schema_valid AND NOT feasible, false)::DOUBLE) END AS valid_but_infeasible_rate,
    avg(power(confidence - correct::DOUBLE, 2))                       AS brier,
    count(confidence) / count(*)                                      AS confidence_coverage,
    quantile_cont(latency_ms, 0.50) FILTER (WHERE status = 'ok')      AS latency_ms_p50,
    quantile_cont(latency_ms, 0.90) FILTER (WHERE status = 'ok')      AS latency_ms_p90,
    quantile_cont(latency_ms, 0.95) FILTER (WHERE status = 'ok')      AS latency_ms_p95,
    quantile_cont(latency_ms, 0.99) FILTER (WHERE status = 'ok')      AS latency_ms_p99,
    quantile_cont(ttft_ms, 0.50) FILTER (WHERE status = 'ok')         AS ttft_ms_p50,
    quantile_cont(ttft_ms, 0.95) FILTER (WHERE status = 'ok')         AS ttft_ms_p95,
    quantile_cont(client_lag_ms, 0.95) FILTER (WHERE status = 'ok')   AS client_lag_ms_p95,
    avg((status = 'error')::DOUBLE)                                   AS error_rate,
    sum(prompt_tokens)                                                AS prompt_tokens,
    sum(completion_tokens)                                            AS completion_tokens,
    avg(prompt_tokens)                                                AS prompt_tokens_mean,
    avg(completion_tokens)                                            AS completion_tokens_mean,
    sum(cost_usd)                                                     AS cost_usd,
    avg(cost_usd) * 1000                                              AS cost_per_1k,
    count(score_error)                                                AS n_score_errors
FROM results
WHERE run_id = $run_id
GROUP BY model
ORDER BY model;

-- name: tail5
-- mean quality of the worst ceil(5% of n) rows of each model
SELECT model, avg(quality) AS tail5
FROM (
    SELECT model, quality,
           row_number() OVER (PARTITION BY model ORDER BY quality) AS rank,
           count(*) OVER (PARTITION BY model)                      AS n
    FROM results
    WHERE run_id = $run_id
)
WHERE rank <= ceil(0.05 * n)
GROUP BY model
ORDER BY model;

-- name: ece
-- expected calibration error: 10 equal-width confidence bins, a confidence of 1.0 in the last bin
SELECT model, sum(abs(correct_sum - confidence_sum)) / any_value(n) AS ece
FROM (
    SELECT model, least(floor(confidence * 10), 9) AS bin,
           sum(correct::DOUBLE) AS correct_sum, sum(confidence) AS confidence_sum, any_value(n) AS n
    FROM (SELECT *, count(*) OVER (PARTITION BY model) AS n
          FROM results WHERE run_id = $run_id AND confidence IS NOT NULL)
    GROUP BY model, bin
)
GROUP BY model
ORDER BY model;

-- name: confidence_tails
-- over the m rows of each model that have a confidence:
-- tail5_brier: mean squared error (confidence - correct)^2 of the worst ceil(5% of m) rows (highest error first);
-- confident_error_rate: share of them wrong with confidence >= $confident_threshold
--   (the run's confidence.confident_threshold, default 0.9)
SELECT model,
       avg(squared) FILTER (WHERE rank <= ceil(0.05 * m))                         AS tail5_brier,
       avg((NOT correct AND confidence >= $confident_threshold)::DOUBLE)          AS confident_error_rate
FROM (
    SELECT model, correct, confidence, power(confidence - correct::DOUBLE, 2) AS squared,
           row_number() OVER (PARTITION BY model ORDER BY power(confidence - correct::DOUBLE, 2) DESC) AS rank,
           count(*) OVER (PARTITION BY model)                                     AS m
    FROM results
    WHERE run_id = $run_id AND confidence IS NOT NULL
)
GROUP BY model
ORDER BY model;

-- name: throughput
-- successful rows this run requested (cached answers took no wall time here) and their completion
-- tokens, per second of the model's wall time (run_models.wall_s, summed over resumes)
SELECT r.model,
       CASE WHEN any_value(m.wall_s) > 0 AND count(*) FILTER (WHERE r.status = 'ok' AND NOT r.cache_hit) > 0
            THEN count(*) FILTER (WHERE r.status = 'ok' AND NOT r.cache_hit) / any_value(m.wall_s) END
                                                                      AS throughput_rps,
       CASE WHEN any_value(m.wall_s) > 0 AND count(*) FILTER (WHERE r.status = 'ok' AND NOT r.cache_hit) > 0
            THEN sum(r.completion_tokens) FILTER (WHERE r.status = 'ok' AND NOT r.cache_hit) / any_value(m.wall_s) END
                                                                      AS output_tokens_per_s
FROM results r JOIN run_models m USING (run_id, model)
WHERE r.run_id = $run_id
GROUP BY r.model
ORDER BY r.model;

-- name: capacity
-- at V = run.volume_per_day (default 100,000): API models pay per call (avg cost_usd × V × 30 days);
-- a model with cost.gpu_usd_per_hour G pays for always-on replicas: greatest(min_replicas,
-- ceil(V / 86,400 / rps)) × G × 730, rps = cost.requests_per_second, else (when a load sweep stored one)
-- the goodput at the SLO, else throughput_rps above. Break-even against gates.baseline's per-call price c:
-- min_replicas × G × 730 / (30 c) when one replica at full capacity (rps × 86,400 calls/day) costs no more
-- than the API for the same calls, else NULL (never). This query covers runs without a load sweep.
WITH run AS (
    SELECT coalesce(TRY_CAST(json_extract_string(config, '$.run.volume_per_day') AS DOUBLE), 100000) AS v,
           json_extract_string(config, '$.gates.baseline') AS baseline
    FROM runs WHERE run_id = $run_id
), measured AS (
    SELECT r.model, avg(r.cost_usd) AS cost_per_call,
           CASE WHEN any_value(m.wall_s) > 0 AND count(*) FILTER (WHERE r.status = 'ok' AND NOT r.cache_hit) > 0
                THEN count(*) FILTER (WHERE r.status = 'ok' AND NOT r.cache_hit) / any_value(m.wall_s) END AS tput,
           TRY_CAST(json_extract_string(any_value(m.config), '$.cost.gpu_usd_per_hour') AS DOUBLE) AS gpu,
           TRY_CAST(json_extract_string(any_value(m.config), '$.cost.requests_per_second') AS DOUBLE) AS stated,
           coalesce(TRY_CAST(json_extract_string(any_value(m.config), '$.cost.min_replicas') AS INTEGER), 1) AS min_r
    FROM results r JOIN run_models m USING (run_id, model)
    WHERE r.run_id = $run_id
    GROUP BY r.model
), model AS (
    SELECT *, coalesce(stated, tput) AS rps,
           CASE WHEN gpu IS NOT NULL AND coalesce(stated, tput) IS NOT NULL
                THEN greatest(min_r, ceil((SELECT v FROM run) / 86400 / coalesce(stated, tput) - 1e-12)) END AS replicas
    FROM measured
)
SELECT m.model,
       CASE WHEN m.gpu IS NULL THEN m.cost_per_call * run.v * 30
            ELSE m.replicas * m.gpu * 730 END                          AS monthly_cost_usd,
       m.replicas                                                       AS replicas_needed,
       CASE WHEN m.gpu IS NOT NULL AND m.rps IS NOT NULL AND b.gpu IS NULL AND b.cost_per_call > 0
                 AND m.model <> b.model
                 AND m.gpu * 730 <= 30 * b.cost_per_call * m.rps * 86400 * (1 + 1e-12)
            THEN m.min_r * m.gpu * 730 / (30 * b.cost_per_call) END    AS break_even_requests_per_day
FROM model m CROSS JOIN run LEFT JOIN model b ON b.model = run.baseline
ORDER BY m.model;

-- name: load_points
-- open-loop load (`evalkit load`, `run.load`): each asked rate's figures from its requests
-- (table load_requests; replace $load_id). Latency is measured from the send; e2e adds the queueing
-- delay (scheduled arrival -> sent) and is what the SLO is judged on. Answers reused from the cache
-- (status 'cached', runs only) put no load on the server and are left out.
SELECT
    rate_per_s,
    count(*) FILTER (WHERE queue_ms IS NOT NULL AND status <> 'cached')        AS n_sent,
    count(*) FILTER (WHERE status = 'ok')                                      AS n_ok,
    count(*) FILTER (WHERE status = 'error')                                   AS n_errors,
    count(*) FILTER (WHERE status = 'error')
        / count(*) FILTER (WHERE queue_ms IS NOT NULL AND status <> 'cached')  AS error_rate,
    quantile_cont(latency_ms, 0.50) FILTER (WHERE status = 'ok')               AS latency_ms_p50,
    quantile_cont(latency_ms, 0.95) FILTER (WHERE status = 'ok')               AS latency_ms_p95,
    quantile_cont(latency_ms, 0.99) FILTER (WHERE status = 'ok')               AS latency_ms_p99,
    quantile_cont(ttft_ms, 0.50) FILTER (WHERE status = 'ok')                  AS ttft_ms_p50,
    quantile_cont(ttft_ms, 0.99) FILTER (WHERE status = 'ok')                  AS ttft_ms_p99,
    quantile_cont(queue_ms + latency_ms, 0.99) FILTER (WHERE status = 'ok')    AS e2e_ms_p99,
    quantile_cont(queue_ms, 0.50)                                              AS queue_ms_p50,
    quantile_cont(queue_ms, 0.99)                                              AS queue_ms_p99,
    max(queue_ms)                                                              AS queue_ms_max,
    count(*) FILTER (WHERE capped)                                             AS cap_waits
FROM load_requests
WHERE load_id = $load_id
GROUP BY rate_per_s
ORDER BY rate_per_s;

-- name: judge
-- the LLM judge (scoring.scorer: judge; table judgements), per judged model: judge requests this run made
-- (attempts of verdicts not reused from the cache), their cost, verdicts unreadable or failed; agreement with
-- people on the model they scored ($human_model: scoring.judge.human_model, else gates.baseline) over its
-- samples whose field $human holds a score (mapped like the judge's: (v - $low) / ($high - $low), pass/yes/true
-- = 1 and fail/no/false = 0; pass_fail: $low = 0, $high = 1): same score, Cohen's kappa (pass_fail,
-- $pass_fail = true) or Spearman (average ranks for ties); pairwise (the candidate's rows): win 1 / tie 0.5 /
-- loss 0 averaged over both orders, and the share of pairs whose two verdicts differ, over the pairs read
-- in both orders
WITH j AS (SELECT * FROM judgements WHERE run_id = $run_id),
counts AS (
    SELECT model,
           sum(CASE WHEN cache_hit THEN 0 ELSE coalesce(attempts, 0) END)::DOUBLE    AS judge_calls,
           sum(cost_usd)                                                            AS judge_cost_usd,
           count(*) FILTER (WHERE status = 'error')::DOUBLE                         AS judge_errors
    FROM j GROUP BY model),
labelled AS (
    SELECT j.model, j.score AS judge,
           CASE lower(trim(s.fields->>$human)) WHEN 'pass' THEN 1.0 WHEN 'yes' THEN 1.0 WHEN 'true' THEN 1.0
                WHEN 'fail' THEN 0.0 WHEN 'no' THEN 0.0 WHEN 'false' THEN 0.0
                ELSE ((s.fields->>$human)::DOUBLE - $low) / ($high - $low) END       AS human
    FROM j JOIN samples s USING (run_id, sample_id)
    WHERE j.kind = 'pointwise' AND j.status = 'ok' AND j.model = $human_model
      AND s.fields->>$human IS NOT NULL),
ranked AS (
    SELECT *, rank() OVER (ORDER BY judge) + (count(*) OVER (PARTITION BY judge) - 1) / 2.0 AS rj,
              rank() OVER (ORDER BY human) + (count(*) OVER (PARTITION BY human) - 1) / 2.0 AS rh
    FROM labelled),
agreement AS (
    SELECT model, avg((abs(judge - human) < 1e-9)::DOUBLE) AS judge_agreement,
           avg((judge = human)::DOUBLE) AS po, avg(judge) AS pj, avg(human) AS ph, corr(rj, rh) AS rho
    FROM ranked GROUP BY model),
pairs AS (
    SELECT model, sample_id, repeat, max(score) FILTER (WHERE pair_order = 'AB') AS ab,
           max(score) FILTER (WHERE pair_order = 'BA') AS ba
    FROM j WHERE kind = 'pairwise' AND status = 'ok' GROUP BY model, sample_id, repeat),
pairwise AS (
    SELECT model, avg((ab + ba) / 2) AS judge_win_rate,
           avg((abs(ab - ba) > 1e-9)::DOUBLE) AS judge_position_disagreement
    FROM pairs WHERE ab IS NOT NULL AND ba IS NOT NULL GROUP BY model)
SELECT c.model, c.judge_calls, c.judge_cost_usd, c.judge_errors, a.judge_agreement,
       CASE WHEN $pass_fail AND a.pj * a.ph + (1 - a.pj) * (1 - a.ph) < 1
            THEN (a.po - (a.pj * a.ph + (1 - a.pj) * (1 - a.ph))) / (1 - (a.pj * a.ph + (1 - a.pj) * (1 - a.ph)))
       END                                                                          AS judge_kappa,
       CASE WHEN NOT $pass_fail THEN a.rho END                                      AS judge_spearman,
       p.judge_win_rate, p.judge_position_disagreement
FROM counts c LEFT JOIN agreement a USING (model) LEFT JOIN pairwise p USING (model)
ORDER BY c.model;
