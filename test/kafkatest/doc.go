// Package kafkatest connects tests to the real three-node Apache Kafka cluster that test/kafka/cluster.sh
// runs on 127.0.0.1, and lets a test take its nodes down and bring them back.
//
// The in-process fake broker (kfake) does not replicate, so it cannot show what acks=all and
// min.insync.replicas do when brokers die. Suites that care run against both: kfake always, and the real
// cluster when [EnvBrokers] is set:
//
//	test/kafka/cluster.sh start
//	TEST_KAFKA_BROKERS=$(test/kafka/cluster.sh seeds) go test -race ./...
//	test/kafka/cluster.sh stop
//
// [Seeds] says whether to run against the cluster and where it is; [Cluster] stops, kills and restarts its
// nodes through the same script, so a test and a person at a shell share one set of pids and logs.
package kafkatest
