"""DumpCounter: exact row counts from both dump layouts, whatever the chunking."""

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils._backup import DumpCounter

MARIADB_LAYOUT = b"""-- MariaDB dump 10.19
/*!40101 SET NAMES utf8mb4 */;
DROP TABLE IF EXISTS `t1`;
CREATE TABLE `t1` (
  `id` int(11) NOT NULL,
  `txt` text,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB;
CREATE TABLE `empty one` (
  `id` int(11) NOT NULL
) ENGINE=InnoDB;
LOCK TABLES `t1` WRITE;
INSERT INTO `t1` VALUES
(1,'a),(b'),
(2,'line\\nbreak ;\\n(3,'),
(3,'it\\'s'),
(4,NULL);
INSERT INTO `t1` VALUES
(5,'');
UNLOCK TABLES;
DELIMITER ;;
CREATE PROCEDURE p()
BEGIN
INSERT INTO `t1` VALUES (99,'not data');
END ;;
DELIMITER ;
INSERT INTO `we``ird` VALUES
(1);
-- Dump completed on 2026-01-01 00:00:00
"""

CLASSIC_LAYOUT = b"""-- MySQL dump 10.13
CREATE TABLE `t1` (
  `id` int NOT NULL
);
INSERT INTO `t1` VALUES (1,'a),(b'),(2,'x\\'),(y'),(3,NULL);
INSERT INTO `t1` VALUES (4,'q');
INSERT INTO `t2` VALUES (1,2),(3,4);
-- Dump completed on 2026-01-01 00:00:00
"""


@pytest.mark.parametrize("text, expected", [
    (MARIADB_LAYOUT, {"t1": 5, "empty one": 0, "we`ird": 1}),
    (CLASSIC_LAYOUT, {"t1": 4, "t2": 2}),
])
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_counts_whatever_the_chunking(text, expected, chunk):
    counter = DumpCounter()
    for start in range(0, len(text), chunk):
        counter.feed(text[start:start + chunk])
    counter.close()
    assert counter.rows == expected
    assert counter.completed


def test_incomplete_dump_is_noticed():
    counter = DumpCounter()
    counter.feed(MARIADB_LAYOUT.rsplit(b"-- Dump completed", 1)[0])
    counter.close()
    assert not counter.completed
