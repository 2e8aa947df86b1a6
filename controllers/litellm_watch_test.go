package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rolesync/rolesync/internal/proxydb"
	"github.com/rolesync/rolesync/internal/testing/testenv"
)

type fakeLiteLLM struct{ rep proxydb.SchemaReport }

func (f fakeLiteLLM) SSORoleMappings(context.Context) (bool, error) { return false, nil }
func (f fakeLiteLLM) Schema(context.Context) (proxydb.SchemaReport, error) {
	return f.rep, nil
}

// The watch exports the LiteLLM migration it found and how many columns
// rolesync uses the schema lacks (no control plane needed).
func TestLiteLLMWatchReportsTheSchema(t *testing.T) {
	src := fakeLiteLLM{rep: proxydb.SchemaReport{Migration: "20261120_x", Missing: []proxydb.Column{{Table: "LiteLLM_SSOConfig", Name: "sso_settings", Type: "jsonb", Optional: true}}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = (&LiteLLMWatch{Source: src, Period: time.Hour}).Start(ctx) }()
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if testutil.ToFloat64(schemaInfo.WithLabelValues("20261120_x")) != 1 {
			return errors.New("rolesync_litellm_schema_info not set")
		}
		return nil
	}, nil)
	cancel()
	<-done
	if got := testutil.ToFloat64(schemaMissing); got != 1 {
		t.Fatalf("rolesync_litellm_schema_missing_columns %v", got)
	}
}
