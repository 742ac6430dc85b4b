package pgstore

import "encoding/json"

func unmarshalStrict(b []byte, v any) error { return json.Unmarshal(b, v) }

func marshal(v any) ([]byte, error) { return json.Marshal(v) }
