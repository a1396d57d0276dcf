"""A managed host without PyMySQL: a clear message, not a traceback.

Runs the module under a bare Python (the oldest one available, 3.8 on this
machine kind), which also proves the engine imports on the oldest target Python.
"""

import glob
import os
import shutil
import subprocess

import pytest


def _bare_python(tmp_path):
    candidates = sorted(glob.glob("/root/.pyenv/versions/3.8*/bin/python3.8")) + [
        shutil.which("python3.8") or "", "/usr/bin/python3"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            venv = str(tmp_path / "bare")
            subprocess.run([candidate, "-m", "venv", "--without-pip", venv], check=True)
            return os.path.join(venv, "bin", "python")
    pytest.skip("no second Python interpreter to play a managed host without PyMySQL")
    return None


def test_module_without_pymysql_names_the_package_and_interpreter(pandora_db, playbook, tmp_path):
    python = _bare_python(tmp_path)
    probe = subprocess.run([python, "-c", "import pymysql"], check=False, stderr=subprocess.PIPE)
    assert probe.returncode != 0, "the bare venv unexpectedly has PyMySQL"
    args = pandora_db.login()
    args["login_password"] = "Not-Shown-Pw1"
    res = playbook.run([{"pandorafms.server.pandora_db_info": args}],
                       extra_vars={"ansible_python_interpreter": python})
    assert res.rc != 0
    msg = res.last["msg"]
    assert "PyMySQL" in msg and "ansible_python_interpreter" in msg and python in msg
    assert "Traceback" not in msg
    assert "Not-Shown-Pw1" not in res.stdout
