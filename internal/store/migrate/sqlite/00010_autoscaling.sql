-- 10: service auto scaling (target tracking settings, JSON)
-- +goose Up
ALTER TABLE services ADD COLUMN autoscaling TEXT NOT NULL DEFAULT '';
