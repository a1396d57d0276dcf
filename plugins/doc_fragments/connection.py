# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options shared by every module of the collection.
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host of the database server.
      - Overrides C(dbhost) of O(pandora_server_conf) and C(host) of O(config_file).
      - V(localhost) without O(login_port) uses the local unix socket when one of the usual
        socket paths exists, like the MySQL client library does.
    type: str
  login_port:
    description:
      - TCP port of the database server. Defaults to C(dbport) of O(pandora_server_conf), else V(3306).
      - From V(1) to V(65535); a port out of range, here or in O(config_file) or O(pandora_server_conf), is
        refused by name before connecting.
    type: int
  login_user:
    description:
      - User to log in with. Defaults to C(dbuser) of O(pandora_server_conf) or C(user) of O(config_file).
    type: str
  login_password:
    description:
      - Password of O(login_user). Never logged, returned or passed on a command line.
    type: str
  login_unix_socket:
    description:
      - Unix socket of a local server; used instead of O(login_host) and O(login_port).
      - Must exist on the managed host.
    type: str
  login_db:
    description:
      - The Pandora FMS database. Defaults to C(dbname) of O(pandora_server_conf).
    type: str
  config_file:
    description:
      - A MySQL/MariaDB client option file whose C([client]) group supplies user, password,
        host, port and socket when the other sources do not.
      - Set to an empty string to read no option file. A file that does not exist is ignored.
      - A C(port) or C(connect_timeout) in it that is not a number in range is refused, with the file named.
    type: path
    default: ~/.my.cnf
  ca_cert:
    description:
      - CA certificate that the server's TLS certificate must be signed by. Enables TLS.
      - Must be an existing file (as O(client_cert) and O(client_key)).
    type: path
    aliases: [ssl_ca]
  client_cert:
    description:
      - Client TLS certificate.
    type: path
    aliases: [ssl_cert]
  client_key:
    description:
      - Key of O(client_cert).
    type: path
    aliases: [ssl_key]
  check_hostname:
    description:
      - Whether the server's TLS certificate must match O(login_host).
      - Defaults to C(verify_mysql_ssl_cert) of O(pandora_server_conf), else V(false).
    type: bool
  connect_timeout:
    description:
      - Seconds to wait for the server to answer a connection attempt.
      - From V(1) to V(3600).
    type: int
    default: 30
  pandora_server_conf:
    description:
      - Path of the Pandora FMS server configuration, usually C(/etc/pandora/pandora_server.conf).
      - Its C(dbhost), C(dbport), C(dbname), C(dbuser), C(dbpass), C(dbssl), C(dbsslcafile),
        C(verify_mysql_ssl_cert) and C(servername) are used; explicit C(login_*) options win.
      - Comments, blank lines and a last line without a newline are handled (unlike C(pandora_db.pl)).
      - When the HA hosts file exists, its first line replaces C(dbhost), as in C(pandora_db.pl).
    type: path
  ha_hosts_file:
    description:
      - The file C(pandora_ha) writes the current master database host to.
      - Defaults to C(ha_hosts_file) of O(pandora_server_conf), else
        C(/var/spool/pandora/data_in/conf/pandora_ha_hosts.conf).
    type: path
requirements:
  - PyMySQL (Debian package C(python3-pymysql)) on the managed host.
  - C(cryptography) for MySQL 8 C(caching_sha2_password) logins.
'''
