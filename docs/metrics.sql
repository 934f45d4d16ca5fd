-- evalkit metric definitions, as SQL over the `results` table.
-- Every point estimate that `evalkit show` prints equals what these queries return
-- (tests/test_metrics_sql.py runs them against stored runs). Replace $run_id with a run id.

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
