package warren

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/runtime/protoiface"
	"google.golang.org/protobuf/runtime/protoimpl"
)

// Why this file exists: Debian 12 ships grpc-go 1.33 with
// github.com/golang/protobuf 1.3.5, whose "proto" codec only knows the old
// table-driven messages. Stubs from protoc-gen-go 1.28 (the APIv2 runtime,
// google.golang.org/protobuf) make it panic ("protobuf tag not enough
// fields", nil dereference in makeOneOfMarshaler). golang/protobuf >= 1.4
// would bridge the two; without it, this package registers a "proto" codec
// built on google.golang.org/protobuf, which also wraps old-style messages.
// grpc looks the codec up by name on every call, so this replaces the
// default process-wide, for every connection, including ones the
// application dials itself. It is harmless once golang/protobuf >= 1.4 is
// installed (the same encoding, done by the same library).
func init() { encoding.RegisterCodec(codecV2{}) }

type codecV2 struct{}

func (codecV2) Name() string { return "proto" }

func (codecV2) Marshal(v interface{}) ([]byte, error) {
	m, err := messageV2(v)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(m)
}

func (codecV2) Unmarshal(data []byte, v interface{}) error {
	m, err := messageV2(v)
	if err != nil {
		return err
	}
	return proto.Unmarshal(data, m)
}

func messageV2(v interface{}) (proto.Message, error) {
	switch m := v.(type) {
	case proto.Message:
		return m, nil
	case protoiface.MessageV1:
		return protoimpl.X.ProtoMessageV2Of(m), nil
	}
	return nil, fmt.Errorf("warren: cannot encode %T: not a protocol buffer message", v)
}
