#!/usr/bin/env bash
# The management link on one machine (README "Management link: try it"):
# a throwaway PKI (openssl), a local Mosquitto with mutual TLS, portier-fleet
# with its Enrolment service storing what the terminal sends, and portierd
# with a [management] table and only a serial and a one-time secret: it
# enrols, reports, answers a signed ping and rotates its key on command; the
# script shows the fleet's view. Everything
# lives under $PORTIER_MGMT_DEMO_DIR (default /tmp/portier-mgmt-demo);
# Ctrl-C (or the end of the script) stops the three processes.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/bin/portierd && -x build/bin/portier-fleet ]] || { bash scripts/install-deps.sh; bash scripts/build.sh; }
BIN=$PWD/build/bin
D=${PORTIER_MGMT_DEMO_DIR:-/tmp/portier-mgmt-demo}
PORT=${PORTIER_MGMT_DEMO_PORT:-18883}
EPORT=${PORTIER_MGMT_DEMO_ENROL_PORT:-18443}
rm -rf "$D" && mkdir -p "$D/pki" "$D/state" "$D/spool" && chmod 700 "$D/state"
cd "$D"
SERIAL=DEMO-$(openssl rand -hex 4)

# --- a throwaway PKI: root CA, and leaves with the usages Portier checks --
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }
leaf() {  # name CN extensions...
  local n=$1 cn=$2; shift 2
  key pki/$n.key
  openssl req -new -key pki/$n.key -subj "/CN=$cn/O=Portier demo" -out pki/$n.csr 2>/dev/null
  printf '%s\n' "$@" > pki/$n.ext
  openssl x509 -req -in pki/$n.csr -CA pki/ca.pem -CAkey pki/ca.key -CAcreateserial \
    -days 30 -sha256 -extfile pki/$n.ext -out pki/$n.pem 2>/dev/null
}
key pki/ca.key
openssl req -x509 -new -key pki/ca.key -subj "/CN=Portier demo CA/O=Portier demo" -days 30 -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" -out pki/ca.pem 2>/dev/null
common=("basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature"
        "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid")
leaf broker localhost "${common[@]}" "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost"
leaf fleet portier-fleet "${common[@]}" "extendedKeyUsage=clientAuth"
leaf commands fleet-commands "${common[@]}" "extendedKeyUsage=codeSigning"

cp pki/broker.key pki/enrol.key  # the Enrolment service's TLS key (0600; the broker's copy is 0644)

# --- staging: the fleet expects the serial with its one-time secret, and
# the terminal gets the same secret (0600): no key, no certificate yet -----
openssl rand -hex 24 > state/enrolment.secret && chmod 600 state/enrolment.secret

# --- Mosquitto with mutual TLS ---------------------------------------------
cat > mosquitto.conf <<CONF
per_listener_settings false
allow_anonymous false
persistence false
listener $PORT 127.0.0.1
cafile $D/pki/ca.pem
certfile $D/pki/broker.pem
keyfile $D/pki/broker.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
CONF
chmod 644 pki/broker.key
mosquitto -c mosquitto.conf > mosquitto.log 2>&1 & PIDS=$!
trap 'kill $PIDS 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

# --- portier-fleet: expect the serial, then serve (with enrolment) ---------
F=("$BIN/portier-fleet" --db fleet.db)
"${F[@]}" expect "$SERIAL" --secret-file state/enrolment.secret --enrol-registry enrolment.db
sleep 0.5
# Acknowledgements are signed with the command key (the terminal deletes a
# record only on one that chains to its command_trust_anchors).
"${F[@]}" serve --ca pki/ca.pem --cert pki/fleet.pem --key pki/fleet.key \
  --signing-key pki/commands.key --signing-cert pki/commands.pem \
  --mqtt ssl://127.0.0.1:$PORT --fleet demo --spool spool \
  --enrol 127.0.0.1:$EPORT --enrol-ca-cert pki/ca.pem --enrol-ca-key pki/ca.key \
  --enrol-registry enrolment.db --enrol-cert pki/broker.pem --enrol-key pki/enrol.key \
  > fleet.log 2>&1 & PIDS="$PIDS $!"

# --- portierd with a [management] table ------------------------------------
cat > state/policy.toml <<POL
version = 1
[[app]]
name = "root-cli"
uid = 0
exe = "$BIN/portierctl"
[[rule]]
app = "root-cli"
ops = ["*"]
POL
cat > portierd.toml <<CFG
socket = "$D/portierd.sock"
state_dir = "$D/state"
policy = "$D/state/policy.toml"
[[scanner]]
id = "sim0"
type = "simulated"
interval_ms = 2000
[management]
link = "mqtt"
server = "ssl://127.0.0.1:$PORT"
fleet = "demo"
ca_file = "$D/pki/ca.pem"
enrolment_server = "127.0.0.1:$EPORT"
enrolment_secret_file = "$D/state/enrolment.secret"
serial = "$SERIAL"
command_trust_anchors = ["$D/pki/ca.pem"]
checkpoint_interval_s = 10
CFG
"$BIN/portierd" --config portierd.toml > portierd.log 2>&1 & PIDS="$PIDS $!"

for _ in $(seq 100); do [[ -s state/management/terminal_id ]] && break; sleep 0.1; done
T=$(cat state/management/terminal_id)
echo "terminal $T (serial $SERIAL): enrolling, then waiting for its birth at the fleet..."
for _ in $(seq 150); do "${F[@]}" terminals 2>/dev/null | grep -q online && break; sleep 0.2; done
"${F[@]}" terminals
CMD=(--signing-key pki/commands.key --signing-cert pki/commands.pem --spool spool)
wait_result() { for _ in $(seq 150); do "${F[@]}" results "$T" | grep -q "$1" && break; sleep 0.2; done; }
id=$("${F[@]}" send "$T" ping --text "hello from the fleet" "${CMD[@]}")
wait_result "$id"
echo "--- rotate the device key (the registry lets its next Renew bring a new key)"
old=$("${F[@]}" --json show "$T" | sed 's/.*"key_id":"\([0-9a-f]*\)".*/\1/')
id=$("${F[@]}" send "$T" rotate-key --enrol-registry enrolment.db "${CMD[@]}")
wait_result "$id"
for _ in $(seq 150); do
  new=$("${F[@]}" --json show "$T" | sed 's/.*"key_id":"\([0-9a-f]*\)".*/\1/')
  [[ "$new" != "$old" ]] && break; sleep 0.2
done
echo "key id $old -> $new"
id=$("${F[@]}" send "$T" ping --text "hello again" "${CMD[@]}")
wait_result "$id"
echo "--- results"; "${F[@]}" results "$T" | grep "^c-" | cut -c1-160
echo "--- show"; "${F[@]}" show "$T" | head -20
echo "--- verify-chain"; "${F[@]}" verify-chain "$T"
echo
echo "All under $D (fleet.db, *.log). Try: ${F[*]} audit $T | tail -3"
if [[ -t 0 ]]; then echo "Ctrl-C stops it."; wait; fi
