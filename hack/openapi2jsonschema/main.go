// Command openapi2jsonschema turns the Kubernetes OpenAPI v2 document
// (swagger.json, from k8s.io/kubernetes or `kubectl get --raw /openapi/v2`
// for custom resources) into one JSON schema per kind, named the way
// kubeconform looks them up offline:
//
//	<kind>[-<group prefix>]-<version>.json   e.g. deployment-apps-v1.json
//
// Schemas are strict, as the API server is: unknown fields are refused
// unless a field says x-kubernetes-preserve-unknown-fields; optional
// fields also accept null; int-or-string takes a string or an integer; a
// quantity takes a string or a number. Descriptions are dropped.
//
//	openapi2jsonschema SWAGGER.json OUTDIR
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

type gvk struct {
	Group   string `json:"group"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: openapi2jsonschema SWAGGER.json OUTDIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "openapi2jsonschema:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	raw, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	c := &converter{defs: doc.Definitions}
	n := 0
	for name, def := range doc.Definitions {
		kinds, _ := json.Marshal(def["x-kubernetes-group-version-kind"])
		var gvks []gvk
		_ = json.Unmarshal(kinds, &gvks)
		for _, k := range gvks {
			if k.Kind == "" || k.Version == "" {
				continue
			}
			schema := c.schema(name, map[string]bool{})
			if m, ok := schema.(map[string]any); ok {
				m["$schema"] = "http://json-schema.org/schema#"
			}
			b, err := json.MarshalIndent(schema, "", "  ")
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := os.WriteFile(filepath.Join(out, fileName(k)), b, 0o644); err != nil {
				return err
			}
			n++
		}
	}
	fmt.Fprintf(os.Stderr, "openapi2jsonschema: %d schemas in %s\n", n, out)
	return nil
}

// fileName is kubeconform's {{.ResourceKind}}{{.KindSuffix}}.json.
func fileName(k gvk) string {
	suffix := "-" + k.Version
	if k.Group != "" {
		suffix = "-" + strings.Split(k.Group, ".")[0] + suffix
	}
	return strings.ToLower(k.Kind) + suffix + ".json"
}

type converter struct{ defs map[string]map[string]any }

// schema returns the definition name with every $ref resolved in place. A
// reference back into a definition being resolved (JSONSchemaProps refers
// to itself) becomes an open schema.
func (c *converter) schema(name string, open map[string]bool) any {
	def, ok := c.defs[name]
	if !ok || open[name] {
		return map[string]any{}
	}
	open[name] = true
	defer delete(open, name)
	return c.node(def, open)
}

func (c *converter) node(n map[string]any, open map[string]bool) any {
	if ref, ok := n["$ref"].(string); ok {
		return c.schema(strings.TrimPrefix(ref, "#/definitions/"), open)
	}
	switch n["format"] {
	case "int-or-string":
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
	}
	if n["type"] == "string" && n["format"] == nil && isQuantity(n) {
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
	}
	out := map[string]any{}
	for k, v := range n {
		switch k {
		case "description", "x-kubernetes-group-version-kind", "x-kubernetes-patch-strategy", "x-kubernetes-patch-merge-key",
			"x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-unions":
			continue
		case "properties":
			props := map[string]any{}
			required, _ := n["required"].([]any)
			for p, pv := range v.(map[string]any) {
				s := c.node(pv.(map[string]any), open)
				if !slices.Contains(required, any(p)) {
					s = nullable(s)
				}
				props[p] = s
			}
			out[k] = props
		case "items", "additionalProperties":
			if m, ok := v.(map[string]any); ok {
				out[k] = c.node(m, open)
			} else {
				out[k] = v
			}
		default:
			out[k] = v
		}
	}
	if _, ok := out["properties"]; ok {
		if _, set := out["additionalProperties"]; !set && n["x-kubernetes-preserve-unknown-fields"] != true {
			out["additionalProperties"] = false
		}
	}
	return out
}

// isQuantity recognizes resource.Quantity, a string in the OpenAPI
// document that clients may write as a number.
func isQuantity(n map[string]any) bool {
	d, _ := n["description"].(string)
	return strings.HasPrefix(d, "Quantity is a fixed-point representation of a number")
}

// nullable lets an optional field be null, as the API server does.
func nullable(s any) any {
	m, ok := s.(map[string]any)
	if !ok {
		return s
	}
	if t, ok := m["type"].(string); ok {
		cp := map[string]any{}
		for k, v := range m {
			cp[k] = v
		}
		cp["type"] = []any{t, "null"}
		return cp
	}
	if one, ok := m["oneOf"].([]any); ok {
		return map[string]any{"oneOf": append(slices.Clone(one), map[string]any{"type": "null"})}
	}
	return m
}
