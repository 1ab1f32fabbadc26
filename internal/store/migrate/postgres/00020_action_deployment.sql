-- 20: the deployment a deploy action started, so that a server taking over
-- from one that died follows it to its end instead of failing the run
-- +goose Up
ALTER TABLE actions ADD COLUMN deployment_id BIGINT;
