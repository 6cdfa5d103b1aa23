#!/usr/bin/env bash
# A tour of the thudo CLI (vault, transit, handbook), in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p thudo-cli
THUDO="$PWD/target/release/thudo"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
export THUDO_VAULT_DIR="$WORK/vault" THUDO_PASSPHRASE="correct horse battery staple"
run() { printf '\n$ %s\n' "$*"; "$@"; }

run "$THUDO" vault init
run "$THUDO" vault put handbook.note nq57 --index doc=57-NQ/TW --body "Nghị quyết 57-NQ/TW: đột phá phát triển khoa học, công nghệ"
run "$THUDO" vault put health.immunization bcg-2024 --index person=child --body '{"vaccine":"BCG","date":"2024-03-02"}'
run "$THUDO" vault get handbook.note nq57; echo
run "$THUDO" vault query health.immunization person child
printf '\n# no file in %s holds the plaintext:\n' "$THUDO_VAULT_DIR"
if grep -rl "Nghị quyết" "$THUDO_VAULT_DIR"; then echo "plaintext found!" >&2; exit 1; else echo "(grep found nothing)"; fi
THUDO_BACKUP_PASSPHRASE="backup secret" run "$THUDO" vault export "$WORK/backup.thudo"
THUDO_NEW_PASSPHRASE="a new passphrase" run "$THUDO" vault passwd
printf '\n# the old passphrase no longer opens it (exit code 3 = wrong key):\n'
"$THUDO" vault list handbook.note || echo "exit code $?"
THUDO_PASSPHRASE="a new passphrase" run "$THUDO" vault list handbook.note
THUDO_PASSPHRASE="a new passphrase" run "$THUDO" vault wipe --yes

printf '\n# --- transit: a monthly pass on the phone, validated offline on a bus ---\n'
cd "$WORK"
unset THUDO_VAULT_DIR
run "$THUDO" transit keygen --key-id 1 --out issuer.json --trusted trusted.json
DEVICE_KEY=$("$THUDO" transit phone-key --dir phone); echo "device key: $DEVICE_KEY"
CREDENTIAL=$("$THUDO" transit issue --issuer issuer.json --device-key "$DEVICE_KEY" --card 9704000000123 \
  --product monthly-single-route --category priority --route 32)
run "$THUDO" transit install --dir phone "$CREDENTIAL"
run "$THUDO" transit show --dir phone --png qr.png
QR=$("$THUDO" transit show --dir phone --text-only)
printf '\n# the bus on route 32 scans it twice (the second is a replay), then a junk scan:\n'
printf '%s\n%s\nnot a ticket\n' "$QR" "$QR" | run "$THUDO" validate --trusted trusted.json --route 32 --dir bus

printf '\n# --- handbook: accent-free search over party documents, and a party fee ---\n'
cat > docs.json <<'JSON'
[{"id":"nq57","number":"57-NQ/TW","issuer":"Bộ Chính trị","issued_on":"2024-12-22","kind":"nghị quyết",
  "title":"Nghị quyết số 57-NQ/TW về đột phá phát triển khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số quốc gia",
  "body":"Khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số là đột phá quan trọng hàng đầu."},
 {"id":"qd01","number":"01-QĐ/TW","issuer":"Ban Chấp hành Trung ương","issued_on":"2026-02-03","kind":"quy định",
  "title":"Quy định số 01-QĐ/TW về chế độ đảng phí",
  "body":"Đảng viên hưởng lương bảo hiểm xã hội đóng đảng phí bằng 1% tiền lương; người nghỉ hưu đóng 0,5% lương hưu."}]
JSON
run "$THUDO" handbook import docs.json
run "$THUDO" handbook search nghi quyet 57
run "$THUDO" handbook search dang phi
run "$THUDO" handbook fee --basis pension --income 7000000 --month 2026-03
echo; echo "tour finished"
