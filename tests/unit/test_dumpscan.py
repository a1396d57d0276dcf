"""The dump guard: what a single-database dump holds passes unchanged, whatever the chunking; the rest is refused."""

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils._dumpscan import DumpGuard, UnsafeDump

GOOD = (
    b"/*M!999999\\- enable the sandbox mode */ \n"
    b"-- MariaDB dump 10.19\n"
    b"/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n"
    b"DROP TABLE IF EXISTS `tgrupo`;\n"
    b"CREATE TABLE `tgrupo` (\n  `id_grupo` mediumint(8) unsigned NOT NULL AUTO_INCREMENT,\n"
    b"  `nombre` text NOT NULL DEFAULT '' COMMENT 'GRANT USE; in a comment string',\n"
    b"  `f` double DEFAULT -1.5e-10,\n  PRIMARY KEY (`id_grupo`)\n) ENGINE=InnoDB;\n"
    b"LOCK TABLES `tgrupo` WRITE;\n/*!40000 ALTER TABLE `tgrupo` DISABLE KEYS */;\n"
    b"INSERT INTO `tgrupo` VALUES\n(1,'Servers; USE other',-1.5e-10),\n(2,'it''s \\' \\\\ ;',NULL),\n"
    b"(3,_binary 'x\\0y',0x00FF27),\n(4,'',b'101');\n"
    b"INSERT INTO `tgrupo` (`id_grupo`, `nombre`) VALUES (5,'a'),(6,'b');\n"
    b"/*!40000 ALTER TABLE `tgrupo` ENABLE KEYS */;\nUNLOCK TABLES;\n"
    b"DELIMITER ;;\n/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER t_ai AFTER INSERT "
    b"ON tgrupo FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('g ', NEW.nombre)) */;;\nDELIMITER ;\n"
    b"DELIMITER ;;\nCREATE DEFINER=`root`@`localhost` PROCEDURE `p`(OUT n INT)\nBEGIN\n"
    b"DECLARE CONTINUE HANDLER FOR NOT FOUND SET n = 0;\nSELECT COUNT(*) INTO n FROM tgrupo;\nEND ;;\n"
    b"DELIMITER ;\n"
    b"/*!50001 CREATE ALGORITHM=UNDEFINED */\n/*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */\n"
    b"/*!50001 VIEW `v` AS select `tgrupo`.`id_grupo` AS `id_grupo` from `tgrupo` */;\n"
    b"-- Dump completed on 2026-12-01 22:00:00\n"
)


def run(data, chunk, rewrite=True, schemas=()):
    guard = DumpGuard("dump.sql", schemas, rewrite=rewrite)
    out = [guard.feed(data[i:i + chunk]) for i in range(0, len(data), chunk)]
    out.append(guard.close())
    return b"".join(out), guard


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 13, 64, 1 << 20])
def test_a_real_dump_passes_whatever_the_chunking(chunk):
    out, guard = run(GOOD, chunk)
    assert out == GOOD.replace(b"DEFINER=`root`@`localhost`", b"DEFINER=CURRENT_USER")
    assert guard.statements == 12


@pytest.mark.parametrize("text,match", [
    (b"USE `other`;\n", "USE"),
    (b'INSERT INTO `t` VALUES ("a\'b"); USE other; INSERT INTO `t` VALUES (\'x\');\n', "literals"),
    (b"INSERT INTO `t` VALUES ('a'),(1); DROP DATABASE x;\n", "database statement"),
    (b"INSERT INTO `other`.`t` VALUES (1);\n", "INSERT"),
    (b"INSERT INTO `t` SELECT * FROM `mysql`.`user`;\n", "INSERT"),
    (b"/*!40101 SET SQL_MODE='NO_BACKSLASH_ESCAPES' */;\n", "server setting"),
    (b"SET GLOBAL general_log = 1;\n", "server setting"),
    (b"GRANT ALL ON *.* TO 'x'@'%';\n", "privilege"),
    (b"/*!50003 CREATE USER x */;\n", "account"),
    (b"DELIMITER ;;\nCREATE PROCEDURE p() BEGIN PREPARE s FROM @q; EXECUTE s; END ;;\nDELIMITER ;\n", "dynamic"),
    (b"DELIMITER ;;\nCREATE VIEW v AS SELECT * FROM `mysql`.`user` ;;\nDELIMITER ;\n", "mysql"),
    (b"\\! rm -rf /\n", "client command"),
    (b"system rm -rf /\n;\n", "never write"),
    (b"DELIMITER $$\n", "delimiter"),
    (b"INSERT INTO `t` VALUES ('never closed);\n", "ends inside"),
    (b"CREATE TABLE `a`.`b` (id INT);\n", "another database"),
    (b"CREATE TABLE t (id INT, FOREIGN KEY (id) REFERENCES `other`.`p` (id));\n", "another database"),
])
def test_what_a_single_database_dump_never_holds_is_refused(text, match):
    for chunk in (1, 7, 1 << 20):
        with pytest.raises(UnsafeDump, match="(?i)" + match):
            run(GOOD.replace(b"-- Dump completed", text + b"-- Dump completed"), chunk)


def test_nothing_is_handed_on_before_its_statement_is_checked():
    guard = DumpGuard("dump.sql", rewrite=True)
    assert guard.feed(b"DROP TABLE IF EXISTS `t`;\nGRANT ALL ON *.* TO x") == b"DROP TABLE IF EXISTS `t`;"
    with pytest.raises(UnsafeDump):
        guard.feed(b";\n")


def test_known_databases_are_refused_inside_objects():
    text = b"DELIMITER ;;\nCREATE TRIGGER t AFTER INSERT ON a FOR EACH ROW DELETE FROM `pandora`.`tagente` ;;\n" \
           b"DELIMITER ;\n"
    run(text, 5)  # unknown name: could be a table alias
    with pytest.raises(UnsafeDump, match="pandora"):
        run(text, 5, schemas=["pandora"])
    out, guard = run(text, 5)
    with pytest.raises(UnsafeDump, match="(?i)pandora"):
        guard.check_qualifiers(["Pandora"])  # case-insensitive
