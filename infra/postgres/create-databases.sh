#!/bin/sh
# Creates one database per service listed in FUNNEL_DATABASES (first start of the volume only).
set -eu
for db in $FUNNEL_DATABASES; do
  psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$db\";"
done
