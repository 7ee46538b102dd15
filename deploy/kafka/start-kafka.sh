#!/bin/sh
# Start one KRaft node in the foreground (the container's main process).
#
# Every environment variable KAFKA_<NAME> becomes the property <name> (lower case, `_` -> `.`),
# as in Apache's own image: KAFKA_NODE_ID=1 -> node.id=1. CLUSTER_ID names the cluster the
# data directory is formatted for (first start only). KAFKA_HEAP_OPTS is passed to the JVM.
set -eu
: "${CLUSTER_ID:?set CLUSTER_ID (a KRaft cluster id, 22 characters of URL-safe base64)}"
: "${KAFKA_LOG_DIRS:?set KAFKA_LOG_DIRS}"
conf=/tmp/server.properties
env | sed -n 's/^KAFKA_\([A-Z0-9_]*\)=\(.*\)$/\1=\2/p' | grep -v '^HEAP_OPTS=' | while IFS='=' read -r name value; do
  printf '%s=%s\n' "$(echo "$name" | tr 'A-Z_' 'a-z.')" "$value"
done > "$conf"
cat > /tmp/log4j.properties <<'LOG'
log4j.rootLogger=INFO, stdout
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
LOG
# shellcheck disable=SC2086
set -- java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx384m} -XX:+UseSerialGC -Djava.awt.headless=true \
  -Dlog4j.configuration=file:/tmp/log4j.properties -cp '/opt/kafka/libs/*'
if [ ! -f "$KAFKA_LOG_DIRS/meta.properties" ]; then
  "$@" kafka.tools.StorageTool format --cluster-id="$CLUSTER_ID" -c "$conf" --ignore-formatted
fi
exec "$@" kafka.Kafka "$conf"
