module github.com/veloxsip/velox

go 1.26.0

require (
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/sys v0.49.0
)

require github.com/expr-lang/expr v1.17.8 // indirect
