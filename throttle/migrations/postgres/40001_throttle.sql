-- throttle crate: shared limiter state. Keys are `<limiter name>:<key>`; times are
-- microseconds since the Unix epoch from the caller's clock. Every decision is one call
-- of one function below (one statement, one round trip), atomic through the row lock.

-- GCRA: the theoretical arrival time of the next cell. A row whose tat has passed is
-- the same as no row (purge deletes it).
CREATE TABLE IF NOT EXISTS throttle_gcra (
    key TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS throttle_gcra_tat ON throttle_gcra (tat);

-- Failure backoff: failures since the last success and the earliest next attempt. A
-- row whose expires_at has passed counts as no row.
CREATE TABLE IF NOT EXISTS throttle_backoff (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS throttle_backoff_expires_at ON throttle_backoff (expires_at);

-- The wait after `failures` failures: none below greatest(free, 1) failures, then base,
-- doubling per further failure, capped. The exponent is clamped at 32; the Rust side
-- validates base <= cap <= one day, so nothing overflows.
CREATE OR REPLACE FUNCTION throttle_backoff_wait(failures BIGINT, free BIGINT, base BIGINT, cap BIGINT)
RETURNS BIGINT LANGUAGE SQL IMMUTABLE AS $$
    SELECT CASE
        WHEN failures < GREATEST(free, 1) THEN 0
        ELSE LEAST(cap, base * (1::BIGINT << LEAST(failures - GREATEST(free, 1), 32)::INT))
    END
$$;

-- One GCRA decision: a cell costs `p_interval`, the bucket holds `p_span` (= interval *
-- burst). Allowed: tat moves on by one interval. Refused: nothing changes.
CREATE OR REPLACE FUNCTION throttle_gcra_check(
    p_key TEXT, p_now BIGINT, p_interval BIGINT, p_span BIGINT,
    OUT allowed BOOLEAN, OUT tat BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    v_tat BIGINT;
BEGIN
    INSERT INTO throttle_gcra AS g (key, tat) VALUES (p_key, p_now) ON CONFLICT (key) DO NOTHING;
    SELECT g.tat INTO v_tat FROM throttle_gcra AS g WHERE g.key = p_key FOR UPDATE;
    v_tat := GREATEST(v_tat, p_now);
    IF v_tat + p_interval - p_span <= p_now THEN
        UPDATE throttle_gcra AS g SET tat = v_tat + p_interval WHERE g.key = p_key;
        allowed := TRUE;
        tat := v_tat + p_interval;
    ELSE
        allowed := FALSE;
        tat := v_tat;
    END IF;
END
$$;

-- May `p_key` try now? Refused while next_at lies ahead. Allowed past the free
-- failures: the slot is taken (next_at moves as if this attempt failed), so parallel
-- attempts cannot share one opening; a success deletes the row.
CREATE OR REPLACE FUNCTION throttle_backoff_check(
    p_key TEXT, p_now BIGINT, p_free BIGINT, p_base BIGINT, p_cap BIGINT, p_forget BIGINT,
    OUT allowed BOOLEAN, OUT failures BIGINT, OUT next_at BIGINT, OUT expires_at BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    v_f BIGINT;
    v_next BIGINT;
    v_exp BIGINT;
BEGIN
    SELECT b.failures, b.next_at, b.expires_at INTO v_f, v_next, v_exp
        FROM throttle_backoff AS b WHERE b.key = p_key FOR UPDATE;
    IF NOT FOUND OR v_exp <= p_now THEN
        allowed := TRUE; failures := 0; next_at := 0; expires_at := p_now;
        RETURN;
    END IF;
    IF p_now < v_next THEN
        allowed := FALSE; failures := v_f; next_at := v_next; expires_at := v_exp;
        RETURN;
    END IF;
    IF v_f >= GREATEST(p_free, 1) THEN
        v_next := p_now + throttle_backoff_wait(v_f + 1, p_free, p_base, p_cap);
        v_exp := p_now + p_forget;
        UPDATE throttle_backoff AS b SET next_at = v_next, expires_at = v_exp WHERE b.key = p_key;
    END IF;
    allowed := TRUE; failures := v_f; next_at := v_next; expires_at := v_exp;
END
$$;

-- Counts one failure of `p_key` (an expired row starts again from zero).
CREATE OR REPLACE FUNCTION throttle_backoff_failure(
    p_key TEXT, p_now BIGINT, p_free BIGINT, p_base BIGINT, p_cap BIGINT, p_forget BIGINT,
    OUT failures BIGINT, OUT next_at BIGINT, OUT expires_at BIGINT)
LANGUAGE SQL AS $$
    INSERT INTO throttle_backoff AS b (key, failures, next_at, expires_at)
    VALUES (p_key, 1, p_now + throttle_backoff_wait(1, p_free, p_base, p_cap), p_now + p_forget)
    ON CONFLICT (key) DO UPDATE SET
        failures = CASE WHEN b.expires_at <= p_now THEN 1 ELSE b.failures + 1 END,
        next_at = GREATEST(
            CASE WHEN b.expires_at <= p_now THEN 0 ELSE b.next_at END,
            p_now + throttle_backoff_wait(
                CASE WHEN b.expires_at <= p_now THEN 1 ELSE b.failures + 1 END,
                p_free, p_base, p_cap)),
        expires_at = p_now + p_forget
    RETURNING b.failures, b.next_at, b.expires_at
$$;
