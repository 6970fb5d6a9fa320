package logstore_test

import (
	"fmt"

	"github.com/whycache/whycache/logstore"
)

func ExampleAppendRecord() {
	rec, err := logstore.AppendRecord(nil, []logstore.Item{
		{Key: []byte("color"), Value: []byte("blue")},
		{Key: []byte("size"), Value: []byte{}}, // an empty value, not a delete
		{Key: []byte("shape"), Delete: true},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(rec) == logstore.RecordOverhead+
		logstore.ItemSize(5, 4, false)+logstore.ItemSize(4, 0, false)+logstore.ItemSize(5, 0, true))

	err = logstore.DecodeRecord(rec, func(it logstore.Item) error {
		if it.Delete {
			fmt.Printf("delete %s\n", it.Key)
		} else {
			fmt.Printf("set %s = %q\n", it.Key, it.Value)
		}
		return nil
	})
	fmt.Println(err)
	// Output:
	// true
	// set color = "blue"
	// set size = ""
	// delete shape
	// <nil>
}
