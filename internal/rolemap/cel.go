package rolemap

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
)

var (
	celEnvOnce sync.Once
	celEnv     *cel.Env
	celEnvErr  error
)

// expressionEnv declares `claims`, the decoded token claims, as a map.
func expressionEnv() (*cel.Env, error) {
	celEnvOnce.Do(func() {
		celEnv, celEnvErr = cel.NewEnv(cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)))
	})
	return celEnv, celEnvErr
}

// compileExpression compiles a CEL expression that must return a bool, with
// a runtime cost limit.
func compileExpression(expr string) (cel.Program, error) {
	env, err := expressionEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("does not compile: %w", iss.Err())
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("must return bool, returns %s", ast.OutputType())
	}
	return env.Program(ast, cel.CostLimit(ExpressionCostMax), cel.EvalOptions(cel.OptOptimize))
}

// celClaims returns claims with every json.Number (claims are decoded with
// UseNumber, so numbers stay exact) as the CEL value it denotes: int for an
// integer that fits int64, else double. Other values are shared, not copied.
func celClaims(claims map[string]any) map[string]any {
	if !hasNumber(claims) {
		return claims
	}
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		out[k] = celValue(v)
	}
	return out
}

func hasNumber(v any) bool {
	switch x := v.(type) {
	case json.Number:
		return true
	case map[string]any:
		for _, e := range x {
			if hasNumber(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasNumber(e) {
				return true
			}
		}
	}
	return false
}

func celValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		return celClaims(x)
	case []any:
		if !hasNumber(x) {
			return x
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = celValue(e)
		}
		return out
	}
	return v
}
