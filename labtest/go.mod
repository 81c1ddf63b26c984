module minishop/labtest

go 1.26.7

require (
	github.com/compose-spec/compose-go/v2 v2.16.2 // indirect
	github.com/prometheus/prometheus v0.316.0 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
)
