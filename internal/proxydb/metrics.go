package proxydb

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	queryDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rolesync_database_query_duration_seconds",
		Help:    "Time of rolesync's statements on the LiteLLM database, by operation (find, apply, team_batch).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"operation"})
	queryErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rolesync_database_errors_total",
		Help: "Failed statements on the LiteLLM database, by operation.",
	}, []string{"operation"})
	databaseUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rolesync_database_up",
		Help: "1 when the last statement on the LiteLLM database reached it (it may still have failed as SQL), 0 when the database could not be reached.",
	})
)

func init() { metrics.Registry.MustRegister(queryDuration, queryErrors, databaseUp) }

// observe records one statement of operation that started at start.
func observe(operation string, start time.Time, err error) {
	queryDuration.WithLabelValues(operation).Observe(time.Since(start).Seconds())
	if err != nil {
		queryErrors.WithLabelValues(operation).Inc()
	}
	var pg *pgconn.PgError
	switch {
	case err == nil, errors.As(err, &pg): // answered (a SQL error is an answer)
		databaseUp.Set(1)
	case !errors.Is(err, context.Canceled): // a cancelled caller says nothing about the database
		databaseUp.Set(0)
	}
}
