"""The connection layer, tconfig access and the maintenance lock against a real MariaDB."""

import json
import socket
import threading
import time

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils import _connection, _lock, _tconfig
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConnectionFailed, LockBusy
from ansible_collections.pandorafms.server.plugins.module_utils._module_args import settings_from_params

SYMBOL_PASSWORD = "p\"a'ss#w//rd $x;\\end %s ` ~"


@pytest.fixture
def pandora_user(pandora_db):
    """A 'pandora' account with a password full of symbols, on TCP and socket hosts."""
    user = "pandora_%s" % pandora_db.name[-6:].replace("_", "")
    for host in ("127.0.0.1", "localhost"):
        pandora_db.query("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, SYMBOL_PASSWORD))
        pandora_db.query("GRANT ALL ON `%s`.* TO %%s@%%s" % pandora_db.name, (user, host))
    yield user
    for host in ("127.0.0.1", "localhost"):
        pandora_db.query("DROP USER IF EXISTS %s@%s", (user, host))


def _whoami(settings):
    conn = _connection.connect(settings)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT USER(), DATABASE(), host FROM information_schema.processlist"
                        " WHERE id = CONNECTION_ID()")
            user, db, host = cur.fetchone()
            return user.split("@")[0], db, "tcp" if ":" in host else "socket"
    finally:
        conn.close()


def test_tcp_login(pandora_db, pandora_user):
    settings = _connection.resolve_settings({"host": "127.0.0.1", "port": pandora_db.server.port,
                                             "user": pandora_user, "password": SYMBOL_PASSWORD,
                                             "database": pandora_db.name}, "")
    assert _whoami(settings) == (pandora_user, pandora_db.name, "tcp")


def test_unix_socket_login(pandora_db, pandora_user):
    settings = _connection.resolve_settings({"unix_socket": pandora_db.server.socket, "user": pandora_user,
                                             "password": SYMBOL_PASSWORD, "database": pandora_db.name}, "")
    assert _whoami(settings) == (pandora_user, pandora_db.name, "socket")


def test_config_file_login(pandora_db, pandora_user, tmp_path):
    cnf = tmp_path / "my.cnf"
    source = _connection.ConnectionSettings(host="127.0.0.1", port=pandora_db.server.port, user=pandora_user,
                                            password=SYMBOL_PASSWORD)
    path = _connection.write_defaults_file(source, str(tmp_path))
    cnf.write_text(open(path).read())
    settings, dummy = settings_from_params({"config_file": str(cnf), "login_db": pandora_db.name})
    assert _whoami(settings) == (pandora_user, pandora_db.name, "tcp")


def test_pandora_server_conf_with_comments_no_newline_and_ha_override(pandora_db, pandora_user, tmp_path):
    ha = tmp_path / "ha_hosts"
    ha.write_text("127.0.0.1\n")
    conf = tmp_path / "pandora_server.conf"
    conf.write_text("# main server\n\ndbhost db.unreachable.invalid\n# dbport 1\ndbport %d\n"
                    "dbname %s\ndbuser %s\nha_hosts_file %s\ndbpass %s" % (
                        pandora_db.server.port, pandora_db.name, pandora_user, ha, SYMBOL_PASSWORD))
    settings, values = settings_from_params({"pandora_server_conf": str(conf), "config_file": ""})
    assert values["_dbhost_source"] == str(ha)
    assert _whoami(settings) == (pandora_user, pandora_db.name, "tcp")


def test_console_config_php_login(pandora_db, pandora_user, tmp_path):
    (tmp_path / "include").mkdir()
    php_pass = SYMBOL_PASSWORD.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    (tmp_path / "include" / "config.php").write_text(
        '<?php\n// $config["dbpass"]="old";\n$config["dbname"]="%s";\n$config["dbuser"]="%s";\n'
        '$config["dbpass"]="%s";\n$config["dbhost"]="127.0.0.1";\n$config["dbport"]="%d";\n' % (
            pandora_db.name, pandora_user, php_pass, pandora_db.server.port))
    settings, dummy = settings_from_params({"config_file": ""}, console_path=str(tmp_path))
    assert settings.password == SYMBOL_PASSWORD
    assert _whoami(settings) == (pandora_user, pandora_db.name, "tcp")


def test_wrong_password_message(pandora_db, pandora_user):
    wrong = "Wr0ng-S3cret-%s" % pandora_user
    settings = _connection.resolve_settings({"host": "127.0.0.1", "port": pandora_db.server.port,
                                             "user": pandora_user, "password": wrong,
                                             "database": pandora_db.name}, "")
    with pytest.raises(ConnectionFailed) as err:
        _connection.connect(settings)
    msg = str(err.value)
    assert "1045" in msg and "127.0.0.1:%d" % pandora_db.server.port in msg and pandora_db.name in msg
    assert "login_password" in msg
    assert wrong not in msg


def test_wrong_password_through_ansible_never_shows_it(pandora_db, pandora_user, playbook):
    wrong = "Wr0ng-S3cret-in-playbook"
    args = pandora_db.login()
    args.update(login_user=pandora_user, login_password=wrong)
    res = playbook.run([{"pandorafms.server.pandora_db_info": args}])
    assert res.rc != 0
    assert res.last["failed"] is True
    assert "Access denied" in res.last["msg"]
    assert wrong not in json.dumps(res.results)
    assert wrong not in res.stdout and wrong not in res.stderr


@pytest.fixture
def silent_server():
    """A TCP listener on 127.0.0.1 that accepts and never answers (a hung server)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    accepted = []
    stop = threading.Event()

    def loop():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])
            except socket.timeout:
                pass

    thread = threading.Thread(target=loop)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    srv.close()


def test_unreachable_server_honours_connect_timeout(silent_server):
    settings = _connection.resolve_settings({"host": "127.0.0.1", "port": silent_server, "user": "u",
                                             "password": "Secret-not-shown", "connect_timeout": 2}, "")
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as err:
        _connection.connect(settings)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 10, elapsed
    assert "127.0.0.1:%d" % silent_server in str(err.value)
    assert "Secret-not-shown" not in str(err.value)


def test_engine_detection(pandora_db):
    conn = pandora_db.connect()
    try:
        info = _connection.server_info(conn)
    finally:
        conn.close()
    assert info.engine == "mariadb" and info.version >= (10, 0, 0)
    assert info.dump_tool_names()[0] == "mariadb-dump"
    assert _connection.ServerInfo("8.0.36").engine == "mysql"


def test_lock_busy_then_released_when_holder_disconnects(pandora_db):
    holder = pandora_db.connect()
    other = pandora_db.connect()
    try:
        _lock.MaintenanceLock(holder, pandora_db.name).acquire()
        assert not _lock.is_free(other, pandora_db.name)
        started = time.monotonic()
        with pytest.raises(LockBusy) as err:
            _lock.MaintenanceLock(other, pandora_db.name).acquire()
        assert time.monotonic() - started < 1.0
        assert "%s_pandora_db" % pandora_db.name in str(err.value)
        assert "connection %d" % holder.thread_id() in str(err.value)
        # wait mode: gives up after the timeout
        started = time.monotonic()
        with pytest.raises(LockBusy):
            _lock.MaintenanceLock(other, pandora_db.name, wait=1).acquire()
        assert 0.9 <= time.monotonic() - started < 5
        holder.close()  # like a killed pandora_db.pl: the session goes, the lock goes
        deadline = time.monotonic() + 5
        while not _lock.is_free(other, pandora_db.name) and time.monotonic() < deadline:
            time.sleep(0.05)
        with _lock.MaintenanceLock(other, pandora_db.name) as lock:
            assert lock.held
        assert _lock.is_free(other, pandora_db.name)
    finally:
        other.close()
        if holder.open:
            holder.close()


def test_lock_wait_succeeds_when_holder_finishes(pandora_db):
    holder = pandora_db.connect()
    other = pandora_db.connect()
    try:
        first = _lock.MaintenanceLock(holder, pandora_db.name).acquire()
        threading.Timer(0.5, first.release).start()
        with _lock.MaintenanceLock(other, pandora_db.name, wait=10) as lock:
            assert lock.held
    finally:
        holder.close()
        other.close()


def test_tconfig_duplicates_first_row_wins_and_write_leaves_one_row(pandora_db):
    pandora_db.query("INSERT INTO tconfig (token, value) VALUES ('days_purge', '30'), ('event_purge', '7'),"
                     " ('days_purge', '45'), ('days_purge', 'junk')")
    conn = pandora_db.connect()
    try:
        tconfig = _tconfig.TConfig.load(conn)
        assert tconfig.get("days_purge") == "30"
        assert tconfig.duplicates == {"days_purge": ["30", "45", "junk"]}
        assert "days_purge has 3 rows" in tconfig.duplicate_warnings()[0]
        assert _tconfig.read_token(conn, "days_purge") == "30"
        assert _tconfig.plan_token(conn, "days_purge", 60) is True
        assert _tconfig.write_token(conn, "days_purge", 60) is True
        assert _tconfig.token_rows(conn, "days_purge") == ["60"]
        assert _tconfig.write_token(conn, "days_purge", 60) is False
        assert _tconfig.write_token(conn, "new_token", "x") is True
        assert _tconfig.token_rows(conn, "new_token") == ["x"]
        assert _tconfig.token_rows(conn, "event_purge") == ["7"]
    finally:
        conn.close()


def test_connect_timeout_does_not_cut_long_statements(pandora_db):
    settings = _connection.resolve_settings({
        "host": "127.0.0.1", "port": pandora_db.server.port, "user": "root",
        "password": pandora_db.login()["login_password"], "connect_timeout": 1}, "")
    conn = _connection.connect(settings)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT SLEEP(2)")
            assert cur.fetchone()[0] == 0
    finally:
        conn.close()
