-- Locale variants of a template: {"pt-BR": {"subject_template": ..., "body_template": ...}},
-- kept with the template and with each of its versions.
ALTER TABLE templates ADD COLUMN locales jsonb NOT NULL DEFAULT '{}';
ALTER TABLE template_versions ADD COLUMN locales jsonb NOT NULL DEFAULT '{}';

-- The template's locale variant a notification was sent in (NULL: the default, or no template).
ALTER TABLE delivery_log ADD COLUMN locale text;
