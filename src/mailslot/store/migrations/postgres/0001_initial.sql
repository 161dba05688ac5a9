-- Users, their queues and the texts of messages with several recipients.
-- Times are microseconds since the epoch (UTC), as in the SQLite store.

-- Ids come from sequences, never from max(id) + 1: a deleted user's id or an acknowledged
-- message's id is never handed out again (clients de-duplicate by message id).
CREATE SEQUENCE user_ids AS bigint;
CREATE SEQUENCE message_ids AS bigint;

CREATE TABLE users (
    id bigint PRIMARY KEY,
    key text NOT NULL UNIQUE,  -- NFKC + casefold: identity
    name text NOT NULL,  -- spelling at first use: display
    password_hash text,
    created_at bigint NOT NULL
);

-- A message with one recipient lives in its queue row alone (one insert to store it, one
-- delete to remove it). A message with several keeps its text once in `messages`, and its
-- queue rows only point at it (text NULL); `refs` counts them.
CREATE TABLE messages (
    id bigint PRIMARY KEY,
    sender text NOT NULL,
    received_at bigint NOT NULL,
    text text NOT NULL,
    refs integer NOT NULL
);

CREATE TABLE queue (
    user_id bigint NOT NULL,
    message_id bigint NOT NULL,
    sender text,
    received_at bigint,
    text text,
    PRIMARY KEY (user_id, message_id)
);

-- Users deleted while mail to them may still be on its way: what lands late is dropped
-- when a store next opens.
CREATE TABLE deleted_users (
    id bigint PRIMARY KEY
);
