-- 15: a token limited to an app may be limited to one of its
-- environments too
-- +goose Up
ALTER TABLE tokens ADD COLUMN env TEXT NOT NULL DEFAULT '';
