package ci

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// A validator for the subset of XML Schema that testdata/junit.xsd uses:
// global and local element declarations, named and inline complex and
// simple types, sequences and choices with minOccurs/maxOccurs, attributes
// (required, typed), complexContent and simpleContent extensions, and the
// built-in types xs:int, xs:decimal, xs:token, xs:string and xs:dateTime
// with pattern and minLength restrictions. It reads the schema file itself,
// so the test checks WriteJUnit against the committed schema, not against
// rules repeated in Go. Anything else in a schema is an error, so the
// validator cannot silently accept what it does not understand.

type xnode struct {
	name     string
	attrs    map[string]string
	children []*xnode
	text     string
}

func parseXML(data []byte) (*xnode, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var stack []*xnode
	var root *xnode
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &xnode{name: t.Name.Local, attrs: map[string]string{}}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
					continue
				}
				n.attrs[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			}
		}
	}
	return root, nil
}

func (n *xnode) child(name string) *xnode {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

type schema struct {
	elements     map[string]*xnode
	complexTypes map[string]*xnode
	simpleTypes  map[string]*xnode
}

func loadSchema(data []byte) (*schema, error) {
	root, err := parseXML(data)
	if err != nil {
		return nil, err
	}
	s := &schema{map[string]*xnode{}, map[string]*xnode{}, map[string]*xnode{}}
	for _, c := range root.children {
		switch c.name {
		case "element":
			s.elements[c.attrs["name"]] = c
		case "complexType":
			s.complexTypes[c.attrs["name"]] = c
		case "simpleType":
			s.simpleTypes[c.attrs["name"]] = c
		case "annotation":
		default:
			return nil, fmt.Errorf("schema: unsupported top-level %s", c.name)
		}
	}
	return s, nil
}

// validate checks a document against the schema's global elements.
func (s *schema) validate(doc []byte) error {
	root, err := parseXML(doc)
	if err != nil {
		return err
	}
	decl, ok := s.elements[root.name]
	if !ok {
		return fmt.Errorf("root element <%s> is not declared", root.name)
	}
	return s.element(root, decl, "/"+root.name)
}

func (s *schema) element(n, decl *xnode, path string) error {
	if t, ok := decl.attrs["type"]; ok {
		if ct, ok := s.complexTypes[t]; ok {
			return s.complex(n, ct, path)
		}
		if len(n.children) > 0 {
			return fmt.Errorf("%s: simple type %s has child elements", path, t)
		}
		return s.simple(n.text, t, nil, path)
	}
	if ct := decl.child("complexType"); ct != nil {
		return s.complex(n, ct, path)
	}
	if st := decl.child("simpleType"); st != nil {
		return s.simple(n.text, "", st, path)
	}
	return nil // no type: anything goes (xs:anyType)
}

// attributesAndContent flattens a complex type's extensions: its attribute
// declarations, its content model (a sequence or choice, or nil), and the
// simple type of its text for simpleContent.
func (s *schema) attributesAndContent(ct *xnode) (attrs []*xnode, model *xnode, textType string, err error) {
	for _, c := range ct.children {
		switch c.name {
		case "attribute":
			attrs = append(attrs, c)
		case "sequence", "choice":
			model = c
		case "complexContent", "simpleContent":
			ext := c.child("extension")
			if ext == nil {
				return nil, nil, "", fmt.Errorf("schema: %s without extension", c.name)
			}
			base := ext.attrs["base"]
			if c.name == "complexContent" {
				bt, ok := s.complexTypes[base]
				if !ok {
					return nil, nil, "", fmt.Errorf("schema: unknown base %s", base)
				}
				attrs, model, textType, err = s.attributesAndContent(bt)
				if err != nil {
					return nil, nil, "", err
				}
			} else {
				textType = base
			}
			for _, a := range ext.children {
				if a.name != "attribute" {
					return nil, nil, "", fmt.Errorf("schema: unsupported %s in extension", a.name)
				}
				attrs = append(attrs, a)
			}
		case "annotation":
		default:
			return nil, nil, "", fmt.Errorf("schema: unsupported %s in complexType", c.name)
		}
	}
	return attrs, model, textType, nil
}

func (s *schema) complex(n, ct *xnode, path string) error {
	attrs, model, textType, err := s.attributesAndContent(ct)
	if err != nil {
		return err
	}
	declared := map[string]bool{}
	for _, a := range attrs {
		name := a.attrs["name"]
		declared[name] = true
		v, ok := n.attrs[name]
		if !ok {
			if a.attrs["use"] == "required" {
				return fmt.Errorf("%s: missing required attribute %s", path, name)
			}
			continue
		}
		if err := s.simple(v, a.attrs["type"], a.child("simpleType"), path+"/@"+name); err != nil {
			return err
		}
	}
	for name := range n.attrs {
		if !declared[name] {
			return fmt.Errorf("%s: undeclared attribute %s", path, name)
		}
	}
	if textType != "" {
		if len(n.children) > 0 {
			return fmt.Errorf("%s: simple content has child elements", path)
		}
		return s.simple(n.text, textType, nil, path)
	}
	if strings.TrimSpace(n.text) != "" {
		return fmt.Errorf("%s: text in element-only content", path)
	}
	if model == nil {
		if len(n.children) > 0 {
			return fmt.Errorf("%s: empty content has child elements", path)
		}
		return nil
	}
	rest, err := s.particle(n.children, model, path)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%s: unexpected element <%s>", path, rest[0].name)
	}
	return nil
}

func occurs(decl *xnode) (lo, hi int) {
	lo, hi = 1, 1
	if v, ok := decl.attrs["minOccurs"]; ok {
		lo, _ = strconv.Atoi(v)
	}
	if v, ok := decl.attrs["maxOccurs"]; ok {
		if v == "unbounded" {
			hi = 1 << 30
		} else {
			hi, _ = strconv.Atoi(v)
		}
	}
	return lo, hi
}

// particle matches a sequence or choice against the front of children and
// returns what is left.
func (s *schema) particle(children []*xnode, model *xnode, path string) ([]*xnode, error) {
	switch model.name {
	case "sequence":
		for _, decl := range model.children {
			if decl.name != "element" {
				return nil, fmt.Errorf("schema: unsupported %s in sequence", decl.name)
			}
			lo, hi := occurs(decl)
			k := 0
			for k < hi && len(children) > 0 && children[0].name == decl.attrs["name"] {
				if err := s.element(children[0], decl, path+"/"+children[0].name); err != nil {
					return nil, err
				}
				children, k = children[1:], k+1
			}
			if k < lo {
				return nil, fmt.Errorf("%s: missing required element <%s>", path, decl.attrs["name"])
			}
		}
		return children, nil
	case "choice":
		lo, _ := occurs(model)
		if len(children) > 0 {
			for _, decl := range model.children {
				if decl.name == "element" && children[0].name == decl.attrs["name"] {
					return children[1:], s.element(children[0], decl, path+"/"+children[0].name)
				}
			}
		}
		if lo > 0 {
			return nil, fmt.Errorf("%s: none of the choice's elements", path)
		}
		return children, nil
	}
	return nil, fmt.Errorf("schema: unsupported content model %s", model.name)
}

var (
	decimalRE  = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)
	dateTimeRE = regexp.MustCompile(`^-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?$`)
)

// simple checks a value against a named type or an inline simpleType.
func (s *schema) simple(v, typ string, inline *xnode, path string) error {
	if inline == nil && typ != "" {
		if st, ok := s.simpleTypes[typ]; ok {
			inline = st
		}
	}
	if inline == nil {
		return builtin(v, typ, path)
	}
	r := inline.child("restriction")
	if r == nil {
		return fmt.Errorf("schema: simpleType without restriction")
	}
	if err := s.simple(v, r.attrs["base"], nil, path); err != nil {
		return err
	}
	for _, f := range r.children {
		switch f.name {
		case "pattern":
			if !regexp.MustCompile("^(?:" + f.attrs["value"] + ")$").MatchString(v) {
				return fmt.Errorf("%s: %q does not match pattern %s", path, v, f.attrs["value"])
			}
		case "minLength":
			n, _ := strconv.Atoi(f.attrs["value"])
			if len([]rune(v)) < n {
				return fmt.Errorf("%s: %q shorter than %d", path, v, n)
			}
		case "whiteSpace":
		default:
			return fmt.Errorf("schema: unsupported facet %s", f.name)
		}
	}
	return nil
}

func builtin(v, typ, path string) error {
	switch typ {
	case "", "xs:string":
		return nil
	case "xs:token":
		if v != strings.Join(strings.Fields(v), " ") {
			return fmt.Errorf("%s: %q is not an xs:token (leading, trailing or repeated white space)", path, v)
		}
	case "xs:int":
		if _, err := strconv.ParseInt(v, 10, 32); err != nil {
			return fmt.Errorf("%s: %q is not an xs:int", path, v)
		}
	case "xs:decimal":
		if !decimalRE.MatchString(v) {
			return fmt.Errorf("%s: %q is not an xs:decimal", path, v)
		}
	case "xs:dateTime":
		if !dateTimeRE.MatchString(v) {
			return fmt.Errorf("%s: %q is not an xs:dateTime", path, v)
		}
	default:
		return fmt.Errorf("schema: unsupported type %s", typ)
	}
	return nil
}
