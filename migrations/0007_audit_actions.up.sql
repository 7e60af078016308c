-- New audit actions, in a migration of their own: a value added to an enum
-- cannot be used in the transaction that adds it, and 0008 uses these.
--
-- LIST          one entry per list or count request over PHI, whatever it
--               returned: the filter's field names (never values) and, in
--               `detail`, how many documents were returned and counted.
-- AUTH_FAILURE  refused credentials, counted per client and minute.
ALTER TYPE audit.action ADD VALUE IF NOT EXISTS 'LIST';
ALTER TYPE audit.action ADD VALUE IF NOT EXISTS 'AUTH_FAILURE';
