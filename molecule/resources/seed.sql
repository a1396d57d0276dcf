-- Rows for the molecule scenarios (on top of tests/fixtures/pandora_schema.sql), made
-- server-side with MariaDB's SEQUENCE engine: agents, modules, numeric and string data with
-- quotes, backslashes, newlines and non-ASCII text, events, and the schema tokens.
INSERT INTO tconfig (token, value) VALUES
  ('db_scheme_version', '7.0NG.776'), ('MR', '64'), ('days_purge', '45'), ('days_compact', '0');
INSERT INTO tagente (nombre, alias, direccion, id_grupo, comentarios)
  SELECT CONCAT('agent-', seq), CONCAT('Agente «', seq, '»'), CONCAT('10.0.0.', seq), 1 + seq % 3,
         'seeded by molecule' FROM seq_1_to_20;
INSERT INTO tagente_modulo (id_agente, id_tipo_modulo, nombre, descripcion)
  SELECT 1 + seq % 20, 1 + seq % 4, CONCAT('module-', seq), CONCAT('it''s "module" ', seq, ' \\ ok')
  FROM seq_1_to_160;
INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp)
  SELECT 1 + seq % 160, seq * 0.25, 1780000000 + seq * 30 FROM seq_1_to_30000;
INSERT INTO tagente_datos_string (id_agente_modulo, datos, utimestamp)
  SELECT 1 + seq % 160, CONCAT('línea ', seq, '\n\t''quoted'' "double" \\ back'), 1780000000 + seq * 60
  FROM seq_1_to_3000;
INSERT INTO tevento (id_agente, id_grupo, estado, timestamp, evento, utimestamp, event_type, criticity)
  SELECT 1 + seq % 20, 1, seq % 3, FROM_UNIXTIME(1780000000 + seq * 600),
         CONCAT('Module module-', seq, ' is going to critical'), 1780000000 + seq * 600,
         'going_up_critical', 4
  FROM seq_1_to_2000;
