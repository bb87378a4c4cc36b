// Command kclient is the Kafka client the docker tests run inside a
// container of a compose stack (TestDockerKafkaExamples): it produces
// records to a new topic through the given bootstrap address, reads them
// back, and prints the broker addresses Metadata gave it. It exits 1 on
// any failure.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: kclient BOOTSTRAP TOPIC COUNT")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "kclient:", err)
		os.Exit(1)
	}
}

func run(bootstrap, topic, countArg string) error {
	count, err := strconv.Atoi(countArg)
	if err != nil || count <= 0 {
		return fmt.Errorf("count %q: want a positive number", countArg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DialTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		return fmt.Errorf("create %s: %w", topic, err)
	}
	for i := range count {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
	}
	got := 0
	for got < count {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("consumed %d of %d records: %w", got, count, err)
		}
		if err := fs.Err0(); err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		got += fs.NumRecords()
	}
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	for _, b := range brokers {
		fmt.Printf("broker %d %s:%d\n", b.NodeID, b.Host, b.Port)
	}
	fmt.Printf("consumed %d\n", got)
	return nil
}
