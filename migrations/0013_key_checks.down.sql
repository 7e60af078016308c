-- Reverts 0013.
DROP TABLE key_checks;
