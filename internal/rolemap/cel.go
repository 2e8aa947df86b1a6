package rolemap

import (
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
